package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/pki"
)

// The token commands manage the API tokens the masters require when they run with
// --auth or --secure; only an admin token may. In a secure cluster the tokens of the
// node roles (agent, lb, master) are printed as join tokens, which install.sh and
// --join-token take.

func (a *app) tokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	cmd.AddCommand(a.tokenCreateCmd(), a.tokenListCmd(), a.tokenRevokeCmd())
	return cmd
}

// roleNames lists the token roles for help and errors.
func roleNames() string {
	names := make([]string, len(api.TokenRoles))
	for i, r := range api.TokenRoles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

func (a *app) tokenCreateCmd() *cobra.Command {
	var (
		role, principal string
		ttl             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create --role ROLE",
		Short: "Create an API token and print it, the only time it is shown",
		Long: "Create an API token. The masters keep only a hash of its secret: copy the token now.\n" +
			"Roles: admin (everything), operator (everything but tokens), read-only (reads),\n" +
			"framework (the scheduler API as --principal, which its frameworks must subscribe\n" +
			"with, and the key-value namespace of that name), agent, lb and master (what those\n" +
			"nodes call).",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := api.CreateTokenRequest{Role: api.TokenRole(role), Principal: principal}
			switch {
			case !req.Role.Valid():
				return usagef("--role %q: want one of %s", role, roleNames())
			case ttl < 0 || ttl%time.Second != 0:
				return usagef("--ttl %v: want whole seconds, 0 for no expiry", ttl)
			case req.Role == api.RoleFramework && principal == "":
				return usagef("--principal: a framework token needs the principal its frameworks subscribe with")
			}
			req.TTLSeconds = int64(ttl / time.Second)
			client, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
			defer cancel()
			created, err := client.CreateToken(ctx, req)
			if err != nil {
				return err
			}
			joinToken := ""
			if pki.GrantableRoles(pki.Role(req.Role)) != nil {
				if joinToken, err = a.joinToken(ctx, created.Token); err != nil {
					return fmt.Errorf("token %s was created, but not its join token: %w", created.Info.ID, err)
				}
			}
			if a.output == "json" {
				return a.printJSON(createdToken{CreatedToken: created, JoinToken: joinToken})
			}
			expires := "never expires"
			if !created.Info.Expires.IsZero() {
				expires = "expires " + created.Info.Expires.UTC().Format(time.RFC3339)
			}
			if joinToken == "" {
				_, err = fmt.Fprintf(a.stdout, "%s\nToken %s, role %s, %s. It is shown only this once.\n",
					created.Token, created.Info.ID, created.Info.Role, expires)
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "%s\nJoin token %s, role %s, %s. It is shown only this once. Install a node with it:\n"+
				"  curl -fsSL http://%s/install.sh | sudo sh -s -- %s --token %s\n",
				joinToken, created.Info.ID, created.Info.Role, expires, strings.TrimPrefix(a.addr, "https://"), created.Info.Role, joinToken)
			return err
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "what the token may do: "+roleNames())
	cmd.Flags().StringVar(&principal, "principal", "", "who uses the token; framework tokens: the framework's principal")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "how long the token works, e.g. 24h (0: until revoked)")
	return cmd
}

// createdToken is what `token create -o json` prints: the token, and for the node roles
// of a secure cluster the join token that holds it.
type createdToken struct {
	*api.CreatedToken
	JoinToken string `json:"join_token,omitempty"`
}

// joinToken makes the join token of a node role's API token: the token with the hash of
// the cluster CA, which the master in use serves. Only a master reached over TLS that
// verified (--ca-cert) is trusted with the hash; a cluster without security makes none,
// and its nodes join with no token.
func (a *app) joinToken(ctx context.Context, token string) (string, error) {
	if !strings.HasPrefix(a.addr, "https://") {
		return "", nil
	}
	h, err := a.httpClient()
	if err != nil {
		return "", err
	}
	if h == nil {
		h = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.addr+pki.CAPath, nil)
	if err != nil {
		return "", err
	}
	resp, err := h.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetch the cluster CA: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxCABytes))
	if err != nil {
		return "", fmt.Errorf("fetch the cluster CA: %w", err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return "", nil
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetch the cluster CA: %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	ca, err := pki.ParseCA(data, nil)
	if err != nil {
		return "", fmt.Errorf("the cluster CA %s served: %w", a.addr, err)
	}
	return pki.JoinToken{CAHash: ca.Hash(), Secret: token}.String(), nil
}

// maxCABytes bounds the CA certificate read from a master: a few KiB.
const maxCABytes = 64 << 10

func (a *app) tokenListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the API tokens, revoked and expired ones too",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
			defer cancel()
			list, err := client.ListTokens(ctx)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(list.Tokens)
			}
			now := a.now()
			tw := a.table("ID", "ROLE", "PRINCIPAL", "STATUS", "CREATED", "EXPIRES", "CREATED BY")
			for _, t := range list.Tokens {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, orDash(t.Principal), t.Status(now),
					t.Created.UTC().Format(time.RFC3339), orDash(formatTime(t.Expires)), t.CreatedBy)
			}
			return tw.Flush()
		},
	}
}

// formatTime is t in RFC 3339, "" when zero.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func (a *app) tokenRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token: every master refuses it once the revocation is replicated",
		Args:  oneArg("token id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
			defer cancel()
			t, err := client.RevokeToken(ctx, args[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(t)
			}
			_, err = fmt.Fprintf(a.stdout, "Revoked token %s (role %s) at %s.\n", t.ID, t.Role, t.Revoked.UTC().Format(time.RFC3339))
			return err
		},
	}
}
