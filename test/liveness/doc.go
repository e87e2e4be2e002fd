// Package liveness holds the end-to-end tests of storage node liveness as
// meta sees it across meta leader changes, over real processes.
package liveness
