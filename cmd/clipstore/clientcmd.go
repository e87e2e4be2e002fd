package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// clientOptions are the flags every client command shares.
type clientOptions struct {
	meta                 string
	timeout, metaTimeout time.Duration
	tls                  tlsFlags
	keyFile              string
}

// defaultMeta is where client commands look for meta without --meta or
// $CLIPSTORE_META: the dev cluster's address.
const defaultMeta = "127.0.0.1:7400"

func (o *clientOptions) AddFlags(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&o.meta, "meta", "", "meta members, comma-separated (default $CLIPSTORE_META, else "+defaultMeta+")")
	cmd.PersistentFlags().DurationVar(&o.timeout, "timeout", 0, "give up after this long (0: no limit)")
	cmd.PersistentFlags().DurationVar(&o.metaTimeout, "meta-timeout", client.DefaultMetaTimeout,
		"give each attempt of a call to a meta member this long before trying the next member")
	o.tls.addFlags(cmd.PersistentFlags(), false)
	cmd.PersistentFlags().StringVar(&o.keyFile, "key-file", "", "sign calls with the access key in this file: the JSON of 'admin keys create --json', "+
		"or the id and the secret separated by white space (default $"+envKeyFile+", else $"+envAccessKey+" and $"+envSecretKey+")")
}

// The environment variables of a client's access key.
const (
	envAccessKey = "CLIPSTORE_ACCESS_KEY"
	envSecretKey = "CLIPSTORE_SECRET_KEY"
	envKeyFile   = "CLIPSTORE_KEY_FILE"
)

// credentials are the access key a client signs its calls with: from
// --key-file, else $CLIPSTORE_KEY_FILE, else $CLIPSTORE_ACCESS_KEY and
// $CLIPSTORE_SECRET_KEY; none is fine (unsigned calls).
func (o *clientOptions) credentials() (id, secret string, err error) {
	path := o.keyFile
	if path == "" {
		path = os.Getenv(envKeyFile)
	}
	if path == "" {
		id, secret = os.Getenv(envAccessKey), os.Getenv(envSecretKey)
		if (id == "") != (secret == "") {
			return "", "", fmt.Errorf("$%s and $%s go together", envAccessKey, envSecretKey)
		}
		return id, secret, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("key file: %w", err)
	}
	var k struct {
		ID     string `json:"access_key_id"`
		Secret string `json:"secret_access_key"`
	}
	if json.Unmarshal(b, &k) == nil && k.ID != "" && k.Secret != "" {
		return k.ID, k.Secret, nil
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return "", "", fmt.Errorf("key file %s: want the JSON of 'admin keys create --json', or the access key id and the secret separated by white space", path)
	}
	return f[0], f[1], nil
}

// connect builds a client for the meta addresses the flags and
// environment name.
func (o *clientOptions) connect(cmd *cobra.Command) (*client.Client, context.Context, context.CancelFunc, error) {
	addrs := o.meta
	if addrs == "" {
		addrs = os.Getenv("CLIPSTORE_META")
	}
	if addrs == "" {
		addrs = defaultMeta
	}
	tlsID, err := o.tls.load(slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, nil, nil, err
	}
	id, secret, err := o.credentials()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	if o.timeout > 0 {
		ctx, cancel = context.WithTimeout(cmd.Context(), o.timeout)
	}
	c, err := client.New(ctx, client.Config{Meta: strings.Split(addrs, ","), MetaTimeout: o.metaTimeout, TLS: tlsID,
		AccessKey: id, SecretKey: secret})
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return c, ctx, func() { c.Close(); cancel() }, nil
}

// splitPath splits BUCKET/KEY; the key may be empty when allowed.
func splitPath(arg string, keyRequired bool) (bucket, key string, err error) {
	bucket, key, _ = strings.Cut(arg, "/")
	if bucket == "" || (keyRequired && key == "") {
		want := "BUCKET/KEY"
		if !keyRequired {
			want = "BUCKET[/PREFIX]"
		}
		return "", "", fmt.Errorf("%q: want %s", arg, want)
	}
	return bucket, key, nil
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// countBar returns a progress bar counting items on stderr when it is a
// terminal, or nil (quiet) otherwise.
func countBar(cmd *cobra.Command, total int64, what string) *progressbar.ProgressBar {
	f, ok := cmd.ErrOrStderr().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

// progress returns a byte progress bar on stderr when it is a terminal,
// or nil (quiet) otherwise.
func progress(cmd *cobra.Command, size int64, what string) *progressbar.ProgressBar {
	f, ok := cmd.ErrOrStderr().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}
