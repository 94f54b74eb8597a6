package daxkv

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// headerText is daxkv.h without comments, found through pkg-config (the
// header cgo compiles against) or, failing that, in the source tree.
func headerText(t *testing.T) string {
	t.Helper()
	var dirs []string
	if out, err := exec.Command("pkg-config", "--cflags-only-I", "libdaxkv").Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			dirs = append(dirs, strings.TrimPrefix(f, "-I"))
		}
	}
	dirs = append(dirs, filepath.Join("..", "..", "..", "include"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "daxkv.h"))
		if err == nil {
			s := regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(string(b), "")
			return regexp.MustCompile(`//[^\n]*`).ReplaceAllString(s, "")
		}
	}
	t.Fatalf("daxkv.h not found in %v", dirs)
	return ""
}

// headerStructs are the struct tags daxkv.h defines (typedef'd or not).
func headerStructs(h string) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`struct\s+(\w+)\s*\{`).FindAllStringSubmatch(h, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			out = append(out, m[1])
		}
	}
	return out
}

// headerFunctions are the names of the DAXKV_API functions of daxkv.h.
func headerFunctions(h string) []string {
	var out []string
	for _, line := range strings.Split(h, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue // the DAXKV_API definition itself
		}
		if i := strings.Index(line, "DAXKV_API"); i >= 0 {
			decl := line[i+len("DAXKV_API"):]
			if j := strings.Index(decl, "("); j >= 0 {
				f := strings.FieldsFunc(decl[:j], func(r rune) bool { return r == ' ' || r == '*' })
				out = append(out, f[len(f)-1])
			}
		}
	}
	return out
}
