package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/bytesize"
	"github.com/spf13/cobra"
)

// captureFlags are a clip's capture attributes as put takes them.
type captureFlags struct {
	vehicle, camera, start, end string
	tags                        []string
}

func (o *captureFlags) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.vehicle, "vehicle", "", "capture attribute: the vehicle id")
	f.StringVar(&o.camera, "camera", "", "capture attribute: the camera")
	f.StringVar(&o.start, "start", "", "capture attribute: when the capture started (RFC 3339)")
	f.StringVar(&o.end, "end", "", "capture attribute: when it ended (RFC 3339)")
	f.StringArrayVar(&o.tags, "tag", nil, "capture attribute: a tag (repeat for each)")
}

// parse returns the attributes given, nil if none.
func (o *captureFlags) parse() (*client.Capture, error) {
	if o.vehicle == "" && o.camera == "" && o.start == "" && o.end == "" && len(o.tags) == 0 {
		return nil, nil
	}
	c := &client.Capture{VehicleID: o.vehicle, Camera: o.camera, Tags: o.tags}
	var err error
	if c.Start, err = parseTime("--start", o.start); err != nil {
		return nil, err
	}
	if c.End, err = parseTime("--end", o.end); err != nil {
		return nil, err
	}
	if !c.End.IsZero() && c.End.Before(c.Start) {
		return nil, errors.New("--end is before --start")
	}
	return c, nil
}

// parseTime reads an RFC 3339 time; "" is the zero time.
func parseTime(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 time such as 2026-12-05T08:00:00Z", flag, s)
	}
	return t, nil
}

// findFilters are find's filters, which dataset create takes too.
type findFilters struct {
	vehicles, cameras, tags []string
	from, to, prefix        string
}

func (o *findFilters) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVar(&o.vehicles, "vehicle", nil, "a vehicle id (repeat: any of them)")
	f.StringArrayVar(&o.cameras, "camera", nil, "a camera (repeat: any of them)")
	f.StringArrayVar(&o.tags, "tag", nil, "a tag (repeat: every one of them)")
	f.StringVar(&o.from, "from", "", "clips captured until at least this time (RFC 3339)")
	f.StringVar(&o.to, "to", "", "clips captured from at most this time (RFC 3339)")
	f.StringVar(&o.prefix, "prefix", "", "keys starting with this")
}

// query is the filters as client.Find takes them.
func (o *findFilters) query() (client.FindQuery, error) {
	q := client.FindQuery{Vehicles: o.vehicles, Cameras: o.cameras, Tags: o.tags, Prefix: o.prefix}
	var err error
	if q.From, err = parseTime("--from", o.from); err != nil {
		return q, err
	}
	q.To, err = parseTime("--to", o.to)
	return q, err
}

// describe is the filters as a command line would give them.
func (o *findFilters) describe() string {
	var s []string
	for _, v := range o.vehicles {
		s = append(s, "--vehicle "+v)
	}
	for _, v := range o.cameras {
		s = append(s, "--camera "+v)
	}
	for _, v := range o.tags {
		s = append(s, "--tag "+v)
	}
	for _, p := range [][2]string{{"--from", o.from}, {"--to", o.to}, {"--prefix", o.prefix}} {
		if p[1] != "" {
			s = append(s, p[0]+" "+p[1])
		}
	}
	return strings.Join(s, " ")
}

type findOptions struct {
	*clientOptions
	findFilters
	limit   int
	jsonOut bool
}

func newFindCommand(co *clientOptions) *cobra.Command {
	o := &findOptions{clientOptions: co}
	cmd := &cobra.Command{
		Use:   "find BUCKET [--vehicle V…] [--camera C…] [--from T] [--to T] [--tag T…] [--prefix P]",
		Short: "Find clips by vehicle, camera, capture time and tags",
		Long: `List a bucket's clips whose capture interval overlaps [--from, --to] and that
match every filter: any of the --vehicle values, any of the --camera values,
every --tag, keys starting with --prefix. In capture start order; clips without
capture attributes are never found. Times are RFC 3339. --json prints one
object per line (key, size, generation, clip_id, created, capture).`,
		Example: `  clipstore find fleet --vehicle v17 --vehicle v18 --camera front --from 2026-11-30T00:00:00Z --to 2026-12-01T00:00:00Z
  clipstore find fleet --tag rain --tag night --limit 100 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := o.query()
			if err != nil {
				return err
			}
			if o.limit > 0 {
				q.PageSize = o.limit
			}
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			n := 0
			for e, err := range c.Find(ctx, args[0], q) {
				if err != nil {
					return err
				}
				if o.jsonOut {
					if err := writeJSON(cmd.OutOrStdout(), entryJSON(e)); err != nil {
						return err
					}
				} else {
					cp := e.Capture
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cp.Start.UTC().Format(time.RFC3339), orDash(cp.VehicleID), orDash(cp.Camera),
						bytesize.Human(e.Size), e.Key)
				}
				if n++; o.limit > 0 && n == o.limit {
					break
				}
			}
			return tw.Flush()
		},
	}
	o.findFilters.addFlags(cmd)
	f := cmd.Flags()
	f.IntVar(&o.limit, "limit", 0, "at most this many clips (0: all)")
	f.BoolVar(&o.jsonOut, "json", false, "one JSON object per line")
	return cmd
}

// entryJSON is a listed clip as ls --json and find --json print it.
func entryJSON(e *client.ClipEntry) map[string]any {
	m := map[string]any{"key": e.Key, "size": e.Size, "generation": e.Generation, "clip_id": e.ClipID,
		"created": e.Created.UTC().Format(time.RFC3339Nano)}
	if e.Capture != nil {
		m["capture"] = captureJSON(e.Capture)
	}
	return m
}

// captureJSON is capture attributes as JSON shows them.
func captureJSON(cp *client.Capture) map[string]any {
	capture := map[string]any{"vehicle_id": cp.VehicleID, "camera": cp.Camera, "tags": nonNilSlice(cp.Tags)}
	if !cp.Start.IsZero() {
		capture["start"] = cp.Start.UTC().Format(time.RFC3339Nano)
	}
	if !cp.End.IsZero() {
		capture["end"] = cp.End.UTC().Format(time.RFC3339Nano)
	}
	return capture
}
