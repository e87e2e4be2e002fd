package tls

import (
	"testing"

	"github.com/clipstore/clipstore/test/e2e"
)

func TestMain(m *testing.M) { e2e.Main(m) }
