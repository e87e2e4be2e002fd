package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/spf13/cobra"
)

// minClusterSecret is the shortest cluster secret accepted, in bytes.
const minClusterSecret = 16

// minSecretsKey is the shortest secrets key file accepted, in bytes.
const minSecretsKey = 32

// readClusterSecret reads a cluster secret file: its content, without
// surrounding white space, at least minClusterSecret bytes.
func readClusterSecret(path string) ([]byte, error) {
	return readSecretFile("cluster secret", path, minClusterSecret)
}

// readSecretsKey reads the meta members' secrets key file, which seals
// access keys' secrets at rest.
func readSecretsKey(path string) ([]byte, error) {
	return readSecretFile("secrets key", path, minSecretsKey)
}

func readSecretFile(what, path string, minLen int) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < minLen {
		return nil, fmt.Errorf("%s %s: %d bytes; at least %d needed (make one with: head -c 32 /dev/urandom | base64 > %s)",
			what, path, len(s), minLen, path)
	}
	return []byte(s), nil
}

// writeClusterSecret makes a fresh secret file (mode 0600) of 32 random
// bytes, base64, unless one is there already: a cluster secret or a
// secrets key.
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

// readRootKeyFile reads a root key file: the access key id and the secret,
// separated by white space.
func readRootKeyFile(path string) (id, secret string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("root key: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return "", "", fmt.Errorf("root key file %s: want the access key id and the secret separated by white space, found %d fields", path, len(f))
	}
	return f[0], f[1], nil
}

type keysOptions struct {
	*clientOptions
	name    string
	allow   []string
	admin   bool
	jsonOut bool
}

func newKeysCommand(co *clientOptions) *cobra.Command {
	o := &keysOptions{clientOptions: co}
	cmd := &cobra.Command{Use: "keys", Aliases: []string{"key"}, Short: "Create, list and delete access keys (the S3 gateway's credentials)"}
	create := &cobra.Command{
		Use:   "create [NAME] --allow BUCKET:read|write|admin ... [--cluster-admin]",
		Short: "Create an access key and print its secret (shown only this once)",
		Example: `  clipstore admin keys create ingest --allow raw:write
  clipstore admin keys create trainer --allow raw:read --allow curated:read
  clipstore admin keys create ops --allow '*:admin' --cluster-admin`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if o.name != "" && o.name != args[0] {
					return errors.New("give the key's name once: as NAME or as --name")
				}
				o.name = args[0]
			}
			if len(o.allow) == 0 && !o.admin {
				return errors.New("a key needs at least one --allow BUCKET:read|write|admin (--allow '*:admin' for every bucket), or --cluster-admin")
			}
			grants := make([]client.Grant, len(o.allow))
			for i, a := range o.allow {
				var err error
				if grants[i], err = client.ParseGrant(a); err != nil {
					return err
				}
			}
			c, ctx, done, err := o.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			k, err := c.CreateAccessKey(ctx, client.KeySpec{Name: o.name, Grants: grants, ClusterAdmin: o.admin})
			if err != nil {
				return err
			}
			if o.jsonOut {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"access_key_id": k.ID, "secret_access_key": k.Secret,
					"name": k.Name, "created": jsonTime(k.Created), "grants": grantStrings(k.Grants), "cluster_admin": k.ClusterAdmin})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "access key id:     %s\nsecret access key: %s\ngrants:            %s\n", k.ID, k.Secret, keyGrants(k))
			fmt.Fprintln(cmd.OutOrStdout(), "(the secret is not shown again)")
			return nil
		},
	}
	create.Flags().StringVar(&o.name, "name", "", "what the key is for")
	create.Flags().StringArrayVar(&o.allow, "allow", nil,
		"what the key may do: BUCKET:read, BUCKET:write or BUCKET:admin (admin includes read and write), BUCKET * for every bucket; repeat it (at least one)")
	create.Flags().BoolVar(&o.admin, "cluster-admin", false, "the key may also run the cluster: nodes, members, repair limits, cluster settings, keys, fsck")
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
						"created_by": k.CreatedBy, "grants": grantStrings(k.Grants), "cluster_admin": k.ClusterAdmin})
				}
				return writeJSON(cmd.OutOrStdout(), out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ACCESS KEY ID\tNAME\tGRANTS\tCREATED\tBY")
			for _, k := range keys {
				created := ""
				if !k.Created.IsZero() {
					created = k.Created.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, keyGrants(k), created, k.CreatedBy)
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

// keyGrants is what a key may do, as keys create and ls show it.
func keyGrants(k client.AccessKey) string {
	s := k.Grants.String()
	if k.ClusterAdmin {
		if s != "" {
			s += ","
		}
		s += "cluster-admin"
	}
	return s
}

// grantStrings is a policy as JSON shows it: ["bucket:access", …].
func grantStrings(p client.Policy) []string {
	out := make([]string, len(p))
	for i, g := range p {
		out[i] = g.String()
	}
	return out
}
