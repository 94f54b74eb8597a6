package daxkv

import (
	"os"
	"strings"
	"testing"
)

func functionBody(t *testing.T, src, start string) string {
	t.Helper()
	i := strings.Index(src, start)
	if i < 0 {
		t.Fatalf("%q not found", start)
	}
	body := src[i+len(start):]
	end := strings.Index(body, "\n}\n")
	if end < 0 {
		t.Fatalf("no end of %q", start)
	}
	body = body[:end]
	if j := strings.Index(body, "\t// Output:"); j >= 0 {
		body = body[:j]
	}
	return strings.TrimSpace(body)
}

// The README starts with the example that example_test.go runs.
func TestReadmeExampleIsTheTestedOne(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	r := string(readme)
	if lines := strings.SplitN(r, "\n", 4); len(lines) < 3 || lines[2] != "```go" {
		t.Fatal("the README does not start with its example")
	}
	if functionBody(t, r, "func main() {") != functionBody(t, string(ex), "func Example() {") {
		t.Fatal("the README's example and Example in example_test.go differ")
	}
}

// The README's table lists every DAXKV_API function, and the binding calls
// each one it says is offered.
func TestReadmeListsEveryCFunction(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][2]string{}
	for _, l := range strings.Split(string(readme), "\n") {
		cells := strings.Split(l, "|")
		if len(cells) >= 5 && strings.HasPrefix(strings.TrimSpace(cells[1]), "`daxkv_") {
			rows[strings.Trim(strings.TrimSpace(cells[1]), "`")] = [2]string{strings.TrimSpace(cells[2]), strings.TrimSpace(cells[3])}
		}
	}
	var src strings.Builder
	entries, _ := os.ReadDir(".")
	for _, e := range entries {
		n := e.Name()
		if (strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go")) || strings.HasSuffix(n, ".h") {
			b, _ := os.ReadFile(n)
			src.Write(b)
		}
	}
	funcs := headerFunctions(headerText(t))
	if len(funcs) < 60 {
		t.Fatalf("parsed only %d functions", len(funcs))
	}
	known := map[string]bool{}
	for _, f := range funcs {
		known[f] = true
		row, ok := rows[f]
		if !ok {
			t.Errorf("%s is not in the README's table", f)
			continue
		}
		if row[0] == "—" || row[0] == "" {
			if row[1] == "" {
				t.Errorf("%s: not offered, and the table does not say why", f)
			}
		} else if !strings.Contains(src.String(), f+"(") {
			t.Errorf("%s: the README says offered, the binding never calls it", f)
		}
	}
	for f := range rows {
		if !known[f] {
			t.Errorf("%s is in the README's table but not in daxkv.h", f)
		}
	}
}
