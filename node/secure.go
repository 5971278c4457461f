package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/pki"
)

// nodeCredentials returns a node's credentials: those in DataDir/pki when they fit this
// node (a node that has them is secure, whatever its flags say, so that a restart
// without --join-token stays in its cluster); else those a join with cfg.JoinToken
// obtains; else, on a secure master, a new cluster's, which created reports. A master
// holding the CA key signs itself the certificate it lacks (for a role it did not run
// before, or after its own expired) rather than joining again, and makes itself its own
// API token when it has none (master.JoinConfig.OwnToken). A node without security and
// without credentials gets nil.
func nodeCredentials(ctx context.Context, cfg Config, adv string, log *slog.Logger) (creds *pki.Credentials, created bool, err error) {
	dir := filepath.Join(cfg.DataDir, "pki")
	id := nodeIdentity(cfg, adv)
	var token pki.JoinToken
	if cfg.JoinToken != "" {
		if token, err = pki.ParseJoinToken(cfg.JoinToken); err != nil {
			return nil, false, fmt.Errorf("join token: %w", err)
		}
	}
	creds, err = pki.LoadCredentials(dir)
	switch {
	case err == nil:
		if cfg.JoinToken != "" && token.CAHash != creds.CA.Hash() {
			return nil, false, fmt.Errorf("%s holds the credentials of another cluster (CA %s) than --join-token pins (CA %s): remove it to join this one", dir, creds.CA.Hash(), token.CAHash)
		}
		why := unfitCredentials(creds, cfg, id)
		switch {
		case cfg.Master && creds.CA.CanSign():
			changed, err := completeMasterCredentials(creds, cfg, id, why, log)
			if err == nil && changed {
				err = creds.Save(dir)
			}
			return creds, false, err
		case why == "":
			return creds, false, nil
		case cfg.JoinToken == "":
			return nil, false, fmt.Errorf("the credentials in %s do not fit this node: %s; join again with --join-token", dir, why)
		}
		log.Info("joining the cluster again", "reason", why)
	case !errors.Is(err, pki.ErrNoCredentials):
		return nil, false, err
	case !cfg.secure():
		return nil, false, nil
	case cfg.JoinToken == "" && cfg.Master:
		if creds, err = pki.NewCluster(cfg.Name, id, time.Now()); err != nil {
			return nil, false, fmt.Errorf("create the cluster CA: %w", err)
		}
		why := ""
		if certValidity(cfg) != pki.DefaultCertValidity {
			why = "the cluster's certificates are valid for " + cfg.CertValidity.String()
		}
		if _, err := completeMasterCredentials(creds, cfg, id, why, log); err != nil {
			return nil, false, err
		}
		if err := creds.Save(dir); err != nil {
			return nil, false, err
		}
		log.Info("created a secure cluster: its CA, gossip key and this master's certificate", "ca_sha256", creds.CA.Hash(), "dir", dir)
		return creds, true, nil
	case cfg.JoinToken == "":
		return nil, false, fmt.Errorf("no node credentials in %s: a node joins a secure cluster with --join-token (ATL1-…, from the first master or atoll token create --role %s)", dir, id.Roles[0])
	}
	if creds, err = joinCluster(ctx, cfg, id, token, log); err != nil {
		return nil, false, err
	}
	if err := creds.Save(dir); err != nil {
		return nil, false, err
	}
	return creds, false, nil
}

// completeMasterCredentials gives the credentials of a master holding the CA key what
// it needs and reports whether they changed: a certificate for id, signed with that key,
// when why says the current one does not fit; and an API token of its own when it has
// none, for the roles beside it (its DNS server, an agent, a load balancer).
func completeMasterCredentials(creds *pki.Credentials, cfg Config, id pki.Identity, why string, log *slog.Logger) (changed bool, err error) {
	if why != "" {
		id.Generation = pki.CertGeneration(creds.CurrentCert().Leaf)
		cert, err := creds.IssueOwn(id, time.Now(), certValidity(cfg))
		if err != nil {
			return false, fmt.Errorf("sign this master's own certificate: %w", err)
		}
		creds.SetCert(cert)
		changed = true
		log.Info("signed this master's own certificate with the cluster CA", "reason", why, "roles", id.Roles,
			"expires", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if creds.APIToken == "" {
		if creds.APIToken, err = master.NewAPIToken(); err != nil {
			return false, fmt.Errorf("make this master's own API token: %w", err)
		}
		changed = true
	}
	return changed, nil
}

// certValidity is how long the certificates cfg's master signs are valid.
func certValidity(cfg Config) time.Duration {
	if cfg.CertValidity == 0 {
		return pki.DefaultCertValidity
	}
	return cfg.CertValidity
}

// unfitCredentials says why credentials do not fit the node cfg describes, "" when they do.
func unfitCredentials(creds *pki.Credentials, cfg Config, id pki.Identity) string {
	for _, role := range id.Roles {
		if !slices.Contains(creds.Roles(), role) {
			return fmt.Sprintf("the node certificate lacks the %s role", role)
		}
	}
	if cfg.Master && !creds.CA.CanSign() {
		return "a master needs the CA key"
	}
	if leaf := creds.CurrentCert().Leaf; !time.Now().Before(leaf.NotAfter) {
		return fmt.Sprintf("the node certificate expired at %s, and masters renew only certificates that are valid", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return ""
}

// joinCluster joins through the master cfg names, retrying while it cannot be reached
// (a cluster started all at once); a refusal or a CA that is not the token's ends it.
func joinCluster(ctx context.Context, cfg Config, id pki.Identity, token pki.JoinToken, log *slog.Logger) (*pki.Credentials, error) {
	masterURL, err := joinMasterURL(cfg)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	backoff := joinBackoffMin
	for {
		creds, err := pki.Join(ctx, pki.JoinConfig{MasterURL: masterURL, Token: token, Identity: id})
		if err == nil {
			log.Info("joined the secure cluster", "master", masterURL, "roles", creds.Roles(), "ca_sha256", creds.CA.Hash(),
				"certificate_expires", creds.Cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
			return creds, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("join the cluster with --join-token: %w", ctx.Err())
		}
		var mismatch *pki.CAMismatchError
		if errors.As(err, &mismatch) {
			return nil, fmt.Errorf("join the cluster with --join-token: the cluster CA's hash %s, as %s presented it, does not match the join token's %s: "+
				"a man in the middle, or a token of another cluster; nothing was sent to that server", mismatch.Presented, masterURL, mismatch.Expected)
		}
		if !unreachable(err) {
			return nil, fmt.Errorf("join the cluster with --join-token: %w", err)
		}
		log.Warn("waiting to join: the master cannot be reached", "master", masterURL, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("join the cluster with --join-token: %w", ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, joinBackoffMax)
	}
}

// joinMasterURL is the master a node joins through: MasterURL, else the host of the
// first Join address at APIPort.
func joinMasterURL(cfg Config) (string, error) {
	if cfg.MasterURL != "" {
		return cfg.MasterURL, nil
	}
	if len(cfg.Join) == 0 {
		return "", errors.New("no master to join through: give --join or --master-url")
	}
	addr, err := joinAddr(cfg.Join[0])
	if err != nil {
		return "", err
	}
	host, _, _ := net.SplitHostPort(addr)
	return net.JoinHostPort(host, strconv.Itoa(cfg.APIPort)), nil
}

// unreachable reports whether a join failed for want of a connection to the master, as
// opposed to an answer (a refusal, a CA that is not the token's, a certificate that does
// not verify), which trying again would not change.
func unreachable(err error) bool {
	var verify *tls.CertificateVerificationError
	if errors.As(err, &verify) {
		return false
	}
	var op *net.OpError
	var urlErr *url.Error
	return errors.As(err, &op) || errors.As(err, &urlErr) && urlErr.Timeout()
}

// nodeIdentity is what the node's certificate says: its name and roles, and the
// addresses users reach it at.
func nodeIdentity(cfg Config, adv string) pki.Identity {
	id := pki.Identity{Name: cfg.Name}
	if cfg.Master {
		id.Roles = append(id.Roles, pki.RoleMaster)
	}
	if cfg.Agent {
		id.Roles = append(id.Roles, pki.RoleAgent)
	}
	if cfg.LB {
		id.Roles = append(id.Roles, pki.RoleLB)
	}
	addIP := func(ip net.IP) {
		if ip == nil || ip.IsUnspecified() || slices.ContainsFunc(id.IPs, ip.Equal) {
			return
		}
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		id.IPs = append(id.IPs, ip)
	}
	addName := func(name string) {
		if name != "" && !slices.Contains(id.DNSNames, name) {
			id.DNSNames = append(id.DNSNames, name)
		}
	}
	addIP(net.ParseIP(adv))
	addIP(net.ParseIP(cfg.BindAddr))
	addIP(net.IPv4(127, 0, 0, 1))
	addIP(net.IPv6loopback)
	addName(cfg.Name)
	if host, err := os.Hostname(); err == nil && isNameText(host) {
		addName(host)
	}
	addName("localhost")
	for _, n := range cfg.TLSNames {
		if ip := net.ParseIP(n); ip != nil {
			addIP(ip)
		} else {
			addName(n)
		}
	}
	return id
}

// announceJoinCommands hands out the commands that install the first other nodes of a
// new secure cluster, one per role.
func announceJoinCommands(cfg Config, apiURL string, tokens map[pki.Role]string, log *slog.Logger) {
	host := strings.TrimPrefix(apiURL, "https://")
	commands := make(map[pki.Role]string, len(tokens))
	for role, token := range tokens {
		// install.sh comes over plain HTTP: the machine has no credentials yet.
		commands[role] = fmt.Sprintf("curl -fsSL http://%s/install.sh | sudo sh -s -- %s --token %s", host, role, token)
	}
	if cfg.JoinCommands != nil {
		cfg.JoinCommands(commands)
		return
	}
	for _, role := range pki.Roles {
		log.Warn("shown only this once: run this on a machine to make it a "+string(role)+" of the cluster", "command", commands[role])
	}
}

// plainHTTP serves, of a secure master's API, what a machine fetches over plain HTTP
// before it has credentials: the installer, the binary, the CA its join token pins, and
// the health probes; everything else is over TLS only.
func plainHTTP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && plainPath(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		http.Error(w, fmt.Sprintf("this master serves its API over TLS: use https://%s%s", r.Host, r.URL.RequestURI()), http.StatusBadRequest)
	})
}

func plainPath(p string) bool {
	switch p {
	case "/health", "/ping", "/install.sh", "/atoll-uninstall.sh", pki.CAPath:
		return true
	}
	return strings.HasPrefix(p, "/download/") && path.Clean(p) == p
}

// nodeRoutes are the master routes only nodes call, with the role a caller's node
// certificate must hold: in a secure cluster an API token alone makes no agent.
var nodeRoutes = map[string]pki.Role{api.AgentPath: pki.RoleAgent}

// requireNodeCerts refuses the requests to nodeRoutes of clients without a node
// certificate of the route's role, and every request presenting a node certificate that
// check refuses (master.Master.CheckNodeCert: a revoked node's, or one replaced by a
// later join). The master API's TLS has verified any certificate a client presented
// against the cluster CA.
func requireNodeCerts(h http.Handler, check func(*x509.Certificate) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			if err := check(r.TLS.PeerCertificates[0]); err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
		}
		if role, ok := nodeRoutes[path.Clean(r.URL.Path)]; ok {
			if err := checkNodeCert(r, role); err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// checkNodeCert says why r does not come from a node of role, nil when it does.
func checkNodeCert(r *http.Request, role pki.Role) error {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return fmt.Errorf("%s is for nodes of role %s: call it over TLS with the node certificate the %s got by joining (--join-token)", r.URL.Path, role, role)
	}
	cert := r.TLS.PeerCertificates[0]
	if !slices.Contains(pki.RolesOf(cert), role) {
		return fmt.Errorf("%s is for nodes of role %s: %w", r.URL.Path, role, &pki.RoleError{Name: cert.Subject.CommonName, Held: pki.RolesOf(cert), Want: []pki.Role{role}})
	}
	return nil
}

// mastersClient is how a secure node's agent, load balancer and DNS server call the
// masters: TLS trusting the cluster CA alone, verifying the master role, presenting the
// node's certificate.
func mastersClient(creds *pki.Credentials) *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = creds.ClientTLS(pki.RoleMaster)
	return &http.Client{Transport: transport}
}
