// Package examples holds runnable sluice pipelines, one per folder, each
// with its data and a README. The tests in this package run every example
// through the sluice CLI and check its exact output.
package examples
