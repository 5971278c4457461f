package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atoll/atoll/api"
)

// The token commands manage the API tokens the masters require when they run with
// --auth; only an admin token may.

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
			if a.output == "json" {
				return a.printJSON(created)
			}
			expires := "never expires"
			if !created.Info.Expires.IsZero() {
				expires = "expires " + created.Info.Expires.UTC().Format(time.RFC3339)
			}
			_, err = fmt.Fprintf(a.stdout, "%s\nToken %s, role %s, %s. It is shown only this once.\n",
				created.Token, created.Info.ID, created.Info.Role, expires)
			return err
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "what the token may do: "+roleNames())
	cmd.Flags().StringVar(&principal, "principal", "", "who uses the token; framework tokens: the framework's principal")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "how long the token works, e.g. 24h (0: until revoked)")
	return cmd
}

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
