package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	"github.com/atoll/atoll/node/pki"
)

// credentialKeeper keeps a running secure node's credentials current, and saved in its
// pki directory so that a restart has them: it renews the node certificate once two
// thirds of its lifetime have passed (a master signs its own with the CA key; other
// nodes ask a master, pki.Renew), and it saves the gossip key the node's keyring uses
// after a rotation. The TLS configurations made of the credentials present the renewed
// certificate from their next handshake on.
type credentialKeeper struct {
	creds *pki.Credentials
	dir   string
	// validity is how long a master's own certificates are valid.
	validity time.Duration
	members  *Membership
	// masters lists the master APIs (https://host:port) a node that is no master renews
	// through, in the order to try them.
	masters func() []string
	client  *http.Client
	log     *slog.Logger
	// keyCheck is how often the keyring is looked at: a rotation is saved within it.
	keyCheck time.Duration
	// retryMin and retryMax bound the wait between failed renewals, which doubles.
	retryMin, retryMax time.Duration
}

// keepCredentials runs a credentialKeeper for creds until ctx ends.
func keepCredentials(ctx context.Context, cfg Config, creds *pki.Credentials, members *Membership, log *slog.Logger) {
	k := &credentialKeeper{
		creds:    creds,
		dir:      filepath.Join(cfg.DataDir, "pki"),
		validity: certValidity(cfg),
		members:  members,
		client:   mastersClient(creds),
		log:      log.With("component", "credentials"),
		// A keyring change is rare and saving it a second late is harmless; looking is
		// reading one pointer.
		keyCheck: time.Second,
		retryMin: time.Second,
		// A certificate is renewed with a third of its lifetime left: retrying every
		// minute uses little of that, and costs the masters little.
		retryMax: time.Minute,
	}
	k.masters = func() []string {
		apis := members.MasterAPIs()
		// Before gossip has found a master, a node knows the one it joins through.
		if joined, err := joinMasterURL(cfg); err == nil {
			if base, err := pki.MasterBaseURL(joined); err == nil && !slices.Contains(apis, base) {
				apis = append(apis, base)
			}
		}
		return apis
	}
	defer k.client.CloseIdleConnections()
	k.run(ctx)
}

func (k *credentialKeeper) run(ctx context.Context) {
	renewAt := pki.RenewAt(k.creds.CurrentCert().Leaf)
	retry := k.retryMin
	expired := false
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		k.saveGossipKey()
		if now := time.Now(); !expired && !now.Before(renewAt) {
			leaf := k.creds.CurrentCert().Leaf
			err := k.renew(ctx)
			switch {
			case err == nil:
				renewAt, retry = pki.RenewAt(k.creds.CurrentCert().Leaf), k.retryMin
			case ctx.Err() != nil:
				return
			case !now.Before(leaf.NotAfter):
				expired = true
				k.log.Error("the node certificate expired before it could be renewed, and the masters accept only valid certificates: "+
					"join this node again with a join token (atoll token create --role …; restart it with --join-token)",
					"expired", leaf.NotAfter.UTC().Format(time.RFC3339), "err", err)
			default:
				k.log.Warn("could not renew the node certificate; retrying", "err", err, "retry_in", retry,
					"expires", leaf.NotAfter.UTC().Format(time.RFC3339))
				renewAt, retry = now.Add(retry), min(2*retry, k.retryMax)
			}
		}
		wait := k.keyCheck
		if !expired {
			wait = min(wait, time.Until(renewAt))
		}
		timer.Reset(wait)
	}
}

// renew replaces the node's certificate with a new one of the same identity, and saves
// it.
func (k *credentialKeeper) renew(ctx context.Context) error {
	var cert tls.Certificate
	var err error
	if k.creds.CA.CanSign() {
		cert, err = k.creds.IssueOwn(pki.IdentityOf(k.creds.CurrentCert().Leaf), time.Now(), k.validity)
	} else {
		cert, err = k.renewThroughMasters(ctx)
	}
	if err != nil {
		return err
	}
	previous := *k.creds.CurrentCert()
	k.creds.SetCert(cert)
	if err := k.creds.Save(k.dir); err != nil {
		// Renewed again at the next attempt, and saved then.
		k.creds.SetCert(previous)
		return fmt.Errorf("save the renewed certificate: %w", err)
	}
	k.log.Info("renewed the node certificate", "expires", cert.Leaf.NotAfter.UTC().Format(time.RFC3339), "dir", k.dir)
	return nil
}

// renewThroughMasters asks each master in turn, until one renews the certificate.
func (k *credentialKeeper) renewThroughMasters(ctx context.Context) (tls.Certificate, error) {
	masters := k.masters()
	if len(masters) == 0 {
		return tls.Certificate{}, errors.New("no master known to renew the certificate with")
	}
	var errs []error
	for _, base := range masters {
		cert, err := pki.Renew(ctx, k.client, base, k.creds)
		if err == nil {
			return cert, nil
		}
		errs = append(errs, err)
	}
	return tls.Certificate{}, errors.Join(errs...)
}

// saveGossipKey saves the key the node's keyring uses when a rotation changed it.
func (k *credentialKeeper) saveGossipKey() {
	key := k.members.gossipKey()
	previous := k.creds.CurrentGossipKey()
	if key == nil || bytes.Equal(key, previous) {
		return
	}
	k.creds.SetGossipKey(key)
	if err := k.creds.Save(k.dir); err != nil {
		// Saved at the next look.
		k.creds.SetGossipKey(previous)
		k.log.Warn("could not save the rotated gossip key", "err", err)
		return
	}
	k.log.Info("the gossip key was rotated: saved the new one", "dir", k.dir)
}
