package downcity_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeExample runs the README's example as written, as a program of its own.
func TestReadmeExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	match := regexp.MustCompile("(?s)```go\n(.*?)```").FindSubmatch(readme)
	if match == nil {
		t.Fatal("no ```go block in README.md")
	}
	example := strings.TrimSpace(string(match[1]))
	if lines := strings.Count(example, "\n") + 1; lines > 5 {
		t.Fatalf("the README example has %d lines, not 5 at most", lines)
	}
	program := `package main

import (
	"context"
	"fmt"
	"log"
	"os"

	downcity "github.com/downcity/downcity/clients/go"
	downcityv1 "github.com/downcity/downcity/clients/go/gen/downcity/v1"
)

func main() {
` + example + `
}
`
	// Inside the module, so it builds against this checkout and go.sum.
	dir, err := os.MkdirTemp(".", ".readme-example-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", "./"+filepath.Base(dir))
	cmd.Env = os.Environ()
	for k, v := range city.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "Echo: Hello, City") {
		t.Fatalf("output %q", out)
	}
}
