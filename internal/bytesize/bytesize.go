// Package bytesize reads and writes byte counts: Parse reads what a user
// types on a command line ("64KiB", "8MiB", "1MB", "4096"), Format writes a
// size back in that grammar, and Human writes a byte count for people to
// read ("512 B", "4.8 MiB"). The clipstore commands, the load generator,
// the benchmark harness and meta's messages all use it, so a size reads
// and prints the same everywhere.
package bytesize

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// units are the suffixes Parse accepts, longest first so that "KiB" is not
// read as "B". Binary units are powers of 1024, decimal ones powers of
// 1000.
var units = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

// Parse reads a byte count: a plain number of bytes, or a number with a
// binary (KiB, MiB, GiB, TiB) or decimal (KB, MB, GB, TB) unit, in any
// case, e.g. "64KiB", "8MiB", "1MB", "4096".
func Parse(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	lower := strings.ToLower(num)
	for _, u := range units {
		if strings.HasSuffix(lower, u.suffix) {
			num, mult = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q: want bytes, or a number with KiB, MiB, GiB, KB, MB or GB (e.g. 8MiB)", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("bad size %q: too large", s)
	}
	return n * mult, nil
}

// ParseList reads a comma-separated list of sizes, e.g.
// "64KiB,1MiB,8MiB".
func ParseList(s string) ([]int64, error) {
	var out []int64
	for part := range strings.SplitSeq(s, ",") {
		n, err := Parse(part)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// Format prints a size the way Parse reads it: with the largest binary
// unit that divides it exactly ("64KiB", "8MiB"), else in bytes.
func Format(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// Human prints a byte count for people: in bytes below 1 KiB ("512 B"),
// else with one decimal in the largest binary unit it reaches ("64.0 KiB",
// "4.8 MiB", "1.0 GiB").
func Human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
