package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atoll/atoll/api"
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

// postAndPrint makes what postSecurity makes, doing what, and prints the answer: as
// JSON with -o json, else as text says.
func (a *app) postAndPrint(ctx context.Context, path, what string, reply any, text func() string) error {
	if err := a.postSecurity(ctx, path, reply); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if a.output == "json" {
		return a.printJSON(reply)
	}
	_, err := io.WriteString(a.stdout, text())
	return err
}

// maxSecurityReply bounds what postSecurity reads of an answer: a few hundred bytes.
const maxSecurityReply = 1 << 20

// postSecurity makes an empty POST to one of the admin routes of pki (see pki.NodesPath)
// on the master in use, and decodes its JSON answer into reply; another status than 200
// is an *api.HTTPError with the master's explanation. The master that is not the leader
// forwards the request.
func (a *app) postSecurity(ctx context.Context, path string, reply any) error {
	addr, err := a.masterAddr()
	if err != nil {
		return err
	}
	h, err := a.httpClient()
	if err != nil {
		return err
	}
	if h == nil {
		h = http.DefaultClient
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, addr+path, nil)
	if err != nil {
		return err
	}
	if token := a.token(); token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxSecurityReply))
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(data))
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return &api.HTTPError{Status: resp.StatusCode, Message: msg}
	}
	if err := json.Unmarshal(data, reply); err != nil {
		return fmt.Errorf("the answer is not the JSON expected: %w", err)
	}
	return nil
}
