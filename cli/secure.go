package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atoll/atoll/node/pki"
)

// The commands of a secure cluster's node credentials and gossip key: revoking a node,
// rotating the gossip key. Only an admin token may; the masters answer over https, with
// --ca-cert.

func (a *app) nodeCmd() *cobra.Command {
	return commandGroup("node", "Manage the credentials of a secure cluster's nodes", a.nodeRevokeCmd())
}

func (a *app) keyringCmd() *cobra.Command {
	return commandGroup("keyring", "Manage the key that encrypts a secure cluster's gossip", a.keyringRotateCmd())
}

// commandGroup is a command that only groups subcommands.
func commandGroup(use, short string, subcommands ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs, RunE: groupRun}
	cmd.AddCommand(subcommands...)
	return cmd
}

func (a *app) nodeRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a node: every master refuses its certificates and its API tokens",
		Long: "Revoke a node of a secure cluster, by its name: once the revocation is replicated, every master\n" +
			"refuses the node's certificates (its calls, and renewing them) and its API tokens. The node can\n" +
			"come back only by joining again with a join token. A master cannot be revoked: it holds the\n" +
			"cluster CA's key.",
		Args: oneArg("node name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var revocation pki.NodeRevocation
			return a.postAndPrint(cmd.Context(), pki.RevokePath(args[0]), "revoke node "+args[0], &revocation, func() string {
				tokens := "none left to revoke"
				if len(revocation.Tokens) > 0 {
					tokens = strings.Join(revocation.Tokens, ", ")
				}
				return fmt.Sprintf("Revoked node %s at %s: the masters refuse its certificates (generation below %d) and API tokens (%s).\n",
					revocation.Name, revocation.Revoked.UTC().Format(time.RFC3339), revocation.Generation, tokens)
			})
		},
	}
}

func (a *app) keyringRotateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Replace the gossip key on every node",
		Long: "Replace the key that encrypts the cluster's gossip: the leading master installs a new key on every\n" +
			"alive member, hands it to the nodes that join from then on, switches every member to it and\n" +
			"drops the old one. Each node keeps the new key in <data-dir>/pki. Members that are not alive\n" +
			"miss it: once back they cannot gossip, and join again with a join token after their\n" +
			"<data-dir>/pki is removed.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rotation pki.KeyringRotation
			return a.postAndPrint(cmd.Context(), pki.KeyringRotatePath, "rotate the gossip key", &rotation, func() string {
				text := fmt.Sprintf("Rotated the gossip key at %s on %d gossip members; the old key no longer works.\n",
					rotation.Rotated.UTC().Format(time.RFC3339), rotation.Members)
				if len(rotation.Missed) > 0 {
					text += fmt.Sprintf("Not alive, so without it: %s. Once back they cannot gossip: remove their <data-dir>/pki and join them again with a join token.\n",
						strings.Join(rotation.Missed, ", "))
				}
				return text
			})
		},
	}
}

// postAndPrint makes the empty POST to path (api.Client.PostAction), doing what, and
// prints the answer: as JSON with -o json, else as text says.
func (a *app) postAndPrint(ctx context.Context, path, what string, reply any, text func() string) error {
	client, err := a.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := client.PostAction(ctx, path, reply); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if a.output == "json" {
		return a.printJSON(reply)
	}
	_, err = io.WriteString(a.stdout, text())
	return err
}
