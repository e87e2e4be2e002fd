// Package meta holds the end-to-end tests of the metadata service alone:
// three `clipstore meta` processes, SIGKILLed and restarted, keep every
// acknowledged commit and converge.
package meta
