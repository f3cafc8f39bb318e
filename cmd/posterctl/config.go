package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"
)

// loadConfigFile applies a YAML file to every flag not set on the command
// line or in the environment. Unknown keys are an error: a misspelt setting
// that silently does nothing is worse than no config file.
func loadConfigFile(c *cli.Context, path string, flags []cli.Flag) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var keys map[string]any
	if err := yaml.Unmarshal(b, &keys); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	var known []string
	for _, f := range flags {
		if _, ok := f.(altsrc.FlagInputSourceExtension); ok {
			known = append(known, f.Names()[0])
		}
	}
	for k := range keys {
		if !slices.Contains(known, k) {
			return fmt.Errorf("config %s: unknown setting %q (known: %s)", path, k, strings.Join(known, ", "))
		}
	}
	src, err := altsrc.NewYamlSourceFromFile(path)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if err := altsrc.ApplyInputSourceValues(c, src, flags); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}
