// Command schema-check loads each Grafana dashboard given as an argument into the typed
// dashboard model of grafana-foundation-sdk, strictly (unknown or mistyped fields fail), and
// validates it: the schema check of the monitoring mixin's dashboards (Grafana's server is not
// run here).
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: schema-check DASHBOARD.json...")
		os.Exit(2)
	}
	// Panel options and field configs are typed per panel kind (timeseries, ...).
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, path := range os.Args[1:] {
		if err := check(path); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
			continue
		}
		fmt.Printf("%s: a valid dashboard\n", path)
	}
	if failed {
		os.Exit(1)
	}
}

func check(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var model dashboard.Dashboard
	if err := model.UnmarshalJSONStrict(raw); failed(err) {
		return fmt.Errorf("does not decode into the dashboard model: %w", err)
	}
	if err := model.Validate(); failed(err) {
		return fmt.Errorf("does not validate: %w", err)
	}
	if len(model.Panels) == 0 {
		return fmt.Errorf("has no panels")
	}
	return nil
}

// failed reports a real error: the SDK returns its error list typed, so an empty list is a
// non-nil error that says nothing.
func failed(err error) bool {
	var list cog.BuildErrors
	if errors.As(err, &list) {
		return len(list) > 0
	}
	return err != nil
}
