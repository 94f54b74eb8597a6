package daxkv_test

import (
	"fmt"
	"log"

	"github.com/libdaxkv/libdaxkv/ffi/go/daxkv"
)

// The README's example (a test checks that the two stay the same).
func Example() {
	store, err := daxkv.OpenOptions("mem:", 16<<20, map[string]string{"slot_bytes": "1MiB"}) // or "/dev/dax0.0", 0
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	if _, err := store.Put([]byte("layer0/chunk0"), []byte("kv bytes"), false); err != nil {
		log.Fatal(err)
	}
	v, found, err := store.Get([]byte("layer0/chunk0"))
	fmt.Println(string(v), found, err)

	// A batch in the background: its completion arrives on a channel.
	done, err := store.SubmitPut([][]byte{[]byte("a"), []byte("b")}, [][]byte{[]byte("1"), []byte("2")}, false, 0)
	if err != nil {
		log.Fatal(err)
	}
	c := <-done
	fmt.Println("stored", c.Result, c.Err)

	// What the store holds.
	keys, err := store.AllKeys("")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(keys), "keys")
	// Output:
	// kv bytes true <nil>
	// stored 2 <nil>
	// 3 keys
}
