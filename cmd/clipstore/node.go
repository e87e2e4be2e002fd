package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/bytesize"
	"github.com/spf13/cobra"
)

// newNodeCommand is `clipstore admin node`: a storage node's admin state.
func newNodeCommand(co *clientOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Put storage nodes in maintenance, decommission and remove them",
		Long: `A storage node has a liveness (up or down, from its heartbeats) and an admin
state: active (takes new shards), maintenance (planned downtime until the end
of its window: not marked down, its shards not repaired), draining (its shards
are leaving it) and decommissioned (final: nothing references it; remove
forgets it). Every change is replicated and logged with who asked.`}
	cmd.AddCommand(newDrainCommand(co), newUndrainCommand(co), newMaintenanceCommand(co), newDecommissionCommand(co),
		newRemoveNodeCommand(co))
	return cmd
}

type nodeOutput struct {
	*clientOptions
	jsonOut bool
}

// run connects, makes one change of the node through call and prints the
// node after it.
func (o *nodeOutput) run(cmd *cobra.Command, call func(context.Context, *client.Client) (client.StorageNode, error)) error {
	c, ctx, done, err := o.connect(cmd)
	if err != nil {
		return err
	}
	defer done()
	n, err := call(ctx, c)
	if err != nil {
		return err
	}
	return o.print(cmd.OutOrStdout(), n, time.Now())
}

// print writes the node's state after a change: one line, or JSON.
func (o *nodeOutput) print(w io.Writer, n client.StorageNode, now time.Time) error {
	if o.jsonOut {
		return writeJSON(w, nodeJSON(n))
	}
	_, err := fmt.Fprintf(w, "storage node %s: %s, %s\n", n.ID, liveness(n), adminCell(n, now))
	return err
}

func liveness(n client.StorageNode) string {
	if n.Up {
		return "up"
	}
	return "down"
}

// adminCell describes a node's admin state in a few words.
func adminCell(n client.StorageNode, now time.Time) string {
	switch n.AdminState {
	case client.AdminMaintenance:
		return fmt.Sprintf("maintenance until %s (in %s)", n.MaintenanceUntil.UTC().Format(time.RFC3339),
			max(n.MaintenanceUntil.Sub(now), 0).Round(time.Second))
	case client.AdminDraining:
		s := fmt.Sprintf("draining, %d shards (%s) to move", n.ShardsToMove, bytesize.Human(int64(n.BytesToMove)))
		if n.DrainDead {
			s = fmt.Sprintf("draining (dead: its shards are rebuilt elsewhere), %d shards (%s) to move", n.ShardsToMove,
				bytesize.Human(int64(n.BytesToMove)))
		}
		if n.DrainBlocked != "" {
			s += "; BLOCKED: " + n.DrainBlocked
		}
		return s
	case "":
		return client.AdminActive
	default:
		return n.AdminState
	}
}

type maintenanceOptions struct {
	nodeOutput
	window     time.Duration
	end, force bool
}

func newMaintenanceCommand(co *clientOptions) *cobra.Command {
	o := &maintenanceOptions{nodeOutput: nodeOutput{clientOptions: co}}
	cmd := &cobra.Command{
		Use:   "maintenance NODE (--for DURATION | --end)",
		Short: "Start or end a storage node's maintenance window",
		Long: `--for 30m starts (or moves the end of) a maintenance window: for that long the
node takes no new shards, is not marked down when it stops, and its shards are
not repaired; reads go around it. Refused when a clip would be left with fewer
than k+1 available shards, unless --force. At the end of the window the node
is active again; if it has not come back it is marked down and repaired as
usual. --end ends the window now.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.end == cmd.Flags().Changed("for") {
				return errors.New("give either --for DURATION or --end")
			}
			if !o.end && o.window <= 0 {
				return fmt.Errorf("--for %v: want a positive duration such as 30m", o.window)
			}
			return o.run(cmd, func(ctx context.Context, c *client.Client) (client.StorageNode, error) {
				if o.end {
					return c.EndMaintenance(ctx, args[0])
				}
				return c.StartMaintenance(ctx, args[0], o.window, o.force)
			})
		},
	}
	cmd.Flags().DurationVar(&o.window, "for", 0, "length of the maintenance window, e.g. 30m")
	cmd.Flags().BoolVar(&o.end, "end", false, "end the maintenance window now")
	cmd.Flags().BoolVar(&o.force, "force", false, "even if some clip is left with fewer than k+1 available shards")
	cmd.Flags().BoolVar(&o.jsonOut, "json", false, "print the node as JSON")
	return cmd
}

type decommissionOptions struct {
	nodeOutput
	dead bool
}

func newDecommissionCommand(co *clientOptions) *cobra.Command {
	o := &decommissionOptions{nodeOutput: nodeOutput{clientOptions: co}}
	cmd := &cobra.Command{
		Use:   "decommission NODE",
		Short: "Retire a storage node for good",
		Long: `Decommission a storage node that holds no shard: it never takes one again, and
remove can forget it. A node that still holds shards is refused, with their
count. --dead accepts a node that is down for good: its shards are rebuilt from
the others at once (the node shows as draining), and the node is
decommissioned when nothing references it any more.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, c *client.Client) (client.StorageNode, error) {
				return c.Decommission(ctx, args[0], o.dead)
			})
		},
	}
	cmd.Flags().BoolVar(&o.dead, "dead", false, "the node is down for good: rebuild its shards elsewhere first")
	cmd.Flags().BoolVar(&o.jsonOut, "json", false, "print the node as JSON")
	return cmd
}

func newRemoveNodeCommand(co *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NODE",
		Short: "Forget a decommissioned storage node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := co.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			if err := c.RemoveNode(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "storage node %s removed\n", args[0])
			return nil
		},
	}
}

type drainOptions struct {
	nodeOutput
	wait bool
}

func newDrainCommand(co *clientOptions) *cobra.Command {
	o := &drainOptions{nodeOutput: nodeOutput{clientOptions: co}}
	cmd := &cobra.Command{
		Use:   "drain NODE [--wait]",
		Short: "Move every shard off a storage node",
		Long: `Start draining a storage node: it takes no new shards, and each of its shards
is rebuilt on another node (after the repair of lost shards, within the repair
limits of clipstore admin repair) while it stays in place and readable, then
deleted from it. --wait shows the shards left and returns when none is (then
decommission it). undrain stops it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, c *client.Client) (client.StorageNode, error) {
				n, err := c.Drain(ctx, args[0])
				if err != nil || !o.wait {
					return n, err
				}
				return waitDrained(cmd, c, n)
			})
		},
	}
	cmd.Flags().BoolVar(&o.wait, "wait", false, "wait until the node holds no shard, with a progress bar")
	cmd.Flags().BoolVar(&o.jsonOut, "json", false, "print the node as JSON")
	return cmd
}

// waitDrained polls the node until no shard is left on it (or it is no
// longer draining), with a progress bar on a terminal.
func waitDrained(cmd *cobra.Command, c *client.Client, n client.StorageNode) (client.StorageNode, error) {
	total := n.ShardsToMove
	bar := countBar(cmd, int64(total), "draining "+n.ID)
	for n.AdminState == client.AdminDraining && n.ShardsToMove > 0 {
		select {
		case <-cmd.Context().Done():
			return n, cmd.Context().Err()
		case <-time.After(250 * time.Millisecond):
		}
		st, err := c.ClusterStatus(cmd.Context())
		if err != nil {
			continue // a leader change: ask again
		}
		found := false
		for _, node := range st.Nodes {
			if node.ID == n.ID {
				n, found = node, true
			}
		}
		if !found {
			return n, fmt.Errorf("storage node %s disappeared while draining", n.ID)
		}
		if bar != nil {
			bar.Set64(int64(total - min(n.ShardsToMove, total)))
		}
	}
	if bar != nil {
		bar.Finish()
	}
	if n.AdminState != client.AdminDraining {
		return n, fmt.Errorf("storage node %s is %s: the drain was stopped", n.ID, n.AdminState)
	}
	return n, nil
}

func newUndrainCommand(co *clientOptions) *cobra.Command {
	o := &nodeOutput{clientOptions: co}
	cmd := &cobra.Command{
		Use:   "undrain NODE",
		Short: "Stop draining a storage node: it takes new shards again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, c *client.Client) (client.StorageNode, error) {
				return c.Undrain(ctx, args[0])
			})
		},
	}
	cmd.Flags().BoolVar(&o.jsonOut, "json", false, "print the node as JSON")
	return cmd
}
