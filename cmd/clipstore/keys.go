package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// minClusterSecret is the shortest cluster secret accepted, in bytes.
const minClusterSecret = 16

// readClusterSecret reads a cluster secret file: its content, without
// surrounding white space, at least minClusterSecret bytes.
func readClusterSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < minClusterSecret {
		return nil, fmt.Errorf("cluster secret %s: %d bytes; at least %d needed", path, len(s), minClusterSecret)
	}
	return []byte(s), nil
}

// writeClusterSecret makes a fresh cluster secret file (mode 0600) unless
// one is there already.
func writeClusterSecret(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	b := make([]byte, 32)
	rand.Read(b)
	return os.WriteFile(path, []byte(base64.RawURLEncoding.EncodeToString(b)+"\n"), 0o600)
}

// The root key's environment variables, read by clipstore meta and dev.
const (
	envRootAccessKey = "CLIPSTORE_ROOT_ACCESS_KEY"
	envRootSecretKey = "CLIPSTORE_ROOT_SECRET_KEY"
)

// The dev cluster's fixed credentials when the environment gives none:
// printed at start and in the README, served on loopback only.
const (
	devAccessKey = "CLIPSTOREDEVKEY"
	devSecretKey = "clipstore-dev-secret-key"
)

func rootKeyFromEnv() (id, secret string) {
	return os.Getenv(envRootAccessKey), os.Getenv(envRootSecretKey)
}

type keysOptions struct {
	*clientOptions
	name    string
	jsonOut bool
}

func newKeysCommand(co *clientOptions) *cobra.Command {
	o := &keysOptions{clientOptions: co}
	cmd := &cobra.Command{Use: "keys", Short: "Create, list and delete access keys (the S3 gateway's credentials)"}
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an access key and print its secret (shown only this once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			k, err := c.CreateAccessKey(ctx, o.name)
			if err != nil {
				return err
			}
			if o.jsonOut {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"access_key_id": k.ID, "secret_access_key": k.Secret,
					"name": k.Name, "created": jsonTime(k.Created)})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "access key id:     %s\nsecret access key: %s\n(the secret is not shown again)\n", k.ID, k.Secret)
			return nil
		},
	}
	create.Flags().StringVar(&o.name, "name", "", "what the key is for")
	create.Flags().BoolVar(&o.jsonOut, "json", false, "print the key as JSON")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the access keys (without secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			keys, err := c.ListAccessKeys(ctx)
			if err != nil {
				return err
			}
			if o.jsonOut {
				out := []map[string]any{}
				for _, k := range keys {
					out = append(out, map[string]any{"access_key_id": k.ID, "name": k.Name, "created": jsonTime(k.Created),
						"created_by": k.CreatedBy})
				}
				return writeJSON(cmd.OutOrStdout(), out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ACCESS KEY ID\tNAME\tCREATED\tBY")
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Created.UTC().Format(time.RFC3339), k.CreatedBy)
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&o.jsonOut, "json", false, "print the keys as JSON")
	rm := &cobra.Command{
		Use:   "rm ACCESS_KEY_ID",
		Short: "Delete an access key: requests signed with it fail from then on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			return c.DeleteAccessKey(ctx, args[0])
		},
	}
	cmd.AddCommand(create, ls, rm)
	return cmd
}
