// Package lifecycle holds the end-to-end tests of a storage node's admin
// states (maintenance, decommission, remove) driven through the clipstore
// CLI over real processes.
package lifecycle
