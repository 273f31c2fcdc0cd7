// Loads a Compose file with compose-go, the loader Docker Compose itself
// uses, the way `docker compose` would for each command: with and without
// the variables a script sets later. Any error fails.
//
// Usage: go run . FILE [NAME=VALUE...]
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check FILE [NAME=VALUE...]")
		os.Exit(2)
	}
	file, err := filepath.Abs(os.Args[1])
	if err != nil {
		fail(err)
	}
	env := []string{}
	for _, kv := range os.Args[2:] {
		if !strings.Contains(kv, "=") {
			fail(fmt.Errorf("not NAME=VALUE: %q", kv))
		}
		env = append(env, kv)
	}
	opts, err := cli.NewProjectOptions(
		[]string{file},
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithEnv(env),
		cli.WithName("compose-check"),
	)
	if err != nil {
		fail(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	names := []string{}
	for name := range project.Services {
		names = append(names, name)
	}
	fmt.Printf("compose-check: %s loads (%d services) with %v\n", filepath.Base(file), len(names), env)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compose-check:", err)
	os.Exit(1)
}
