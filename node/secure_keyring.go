package node

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/serf/serf"

	"github.com/atoll/atoll/node/master"
)

// gossipKey is the key this node's gossip encrypts with, its keyring's primary key; nil
// without encryption.
func (m *Membership) gossipKey() []byte {
	if m.keyring == nil {
		return nil
	}
	return m.keyring.GetPrimaryKey()
}

// serfKeyring is the gossip keyring of every member, through serf's key manager, whose
// queries reach every alive member (this one included) and wait for their answers.
type serfKeyring struct{ m *Membership }

var _ master.GossipKeyring = serfKeyring{}

func (k serfKeyring) InstallKey(key []byte) (int, []string, error) {
	resp, err := retryKeyOp(func() (*serf.KeyResponse, error) {
		return k.m.serf.KeyManager().InstallKey(base64.StdEncoding.EncodeToString(key))
	})
	if err != nil {
		return 0, nil, keyringError(resp, err)
	}
	var missed []string
	for _, member := range k.m.Members() {
		if member.Status != serf.StatusAlive.String() {
			missed = append(missed, member.Name)
		}
	}
	return resp.NumResp, missed, nil
}

func (k serfKeyring) UseKey(key []byte) error {
	resp, err := retryKeyOp(func() (*serf.KeyResponse, error) {
		return k.m.serf.KeyManager().UseKey(base64.StdEncoding.EncodeToString(key))
	})
	return keyringError(resp, err)
}

func (k serfKeyring) RemoveKeysExcept(key []byte) error {
	keep := base64.StdEncoding.EncodeToString(key)
	manager := k.m.serf.KeyManager()
	resp, err := retryKeyOp(manager.ListKeys)
	if err != nil {
		return fmt.Errorf("list the keys: %w", keyringError(resp, err))
	}
	for other := range resp.Keys {
		if other == keep {
			continue
		}
		if resp, err := retryKeyOp(func() (*serf.KeyResponse, error) { return manager.RemoveKey(other) }); err != nil {
			return keyringError(resp, err)
		}
	}
	return nil
}

// keyAttempts is how many times a key operation is sent while members' answers are
// missing and none refused: serf's queries and their answers go over UDP within a
// bounded wait, and on a busy or lossy network an answer is missed now and then (CI saw
// "2/3 nodes reported success" once). Installing, using, listing and removing a key can
// all be sent again.
const keyAttempts = 3

// retryKeyOp runs op until every member answered, one refused, or keyAttempts ran out.
func retryKeyOp(op func() (*serf.KeyResponse, error)) (*serf.KeyResponse, error) {
	var resp *serf.KeyResponse
	var err error
	for range keyAttempts {
		resp, err = op()
		if !answersMissing(resp, err) {
			break
		}
	}
	return resp, err
}

// answersMissing tells whether a key operation was sent and failed only because some
// members did not answer in time.
func answersMissing(resp *serf.KeyResponse, err error) bool {
	return err != nil && resp != nil && resp.NumErr == 0 && resp.NumNodes > 0 && resp.NumResp < resp.NumNodes
}

// keyringError adds to a key manager's error what the members that failed said.
func keyringError(resp *serf.KeyResponse, err error) error {
	if err == nil || resp == nil || len(resp.Messages) == 0 {
		return err
	}
	said := make([]string, 0, len(resp.Messages))
	for name, msg := range resp.Messages {
		said = append(said, name+": "+msg)
	}
	slices.Sort(said)
	return fmt.Errorf("%w (%s)", err, strings.Join(said, "; "))
}
