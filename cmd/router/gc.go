package main

import "github.com/aortahealth/aorta/internal/gogc"

// A collector target for a small live heap and much short-lived garbage
// (internal/gogc).
func init() { gogc.SetDefault() }
