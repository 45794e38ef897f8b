//! The attach line: the command a person copies to another machine to add a worker to the sweep.
//! It names the coordinator as other machines reach it (`--advertise HOST`, else this machine's
//! fully qualified name when the coordinator listens on an unspecified address such as 0.0.0.0),
//! the scheme (`https` under TLS), `--token-file` with the token file's absolute path (the path,
//! never the token), and `--tls-ca` with the served certificate (plus `--tls-domain` when the
//! certificate does not name the host but names the coordinator's `--tls-domain`). `run` prints
//! it, `status` shows it while the sweep is stalled, and the dashboard's workers panel while no
//! worker is live.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// What the attach line is made of.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// The address the gRPC server is bound to (its real port, also when asked for port 0).
    pub bound: Option<SocketAddr>,
    /// `--advertise HOST`: the name other machines reach this one by.
    pub advertise: Option<String>,
    /// This machine's fully qualified name, for an unspecified listening address.
    pub fqdn: Option<String>,
    /// `--token-file`, when the token came from a file.
    pub token_file: Option<PathBuf>,
    /// Whether a token is required at all (from the file or `GRIDSWEEP_TOKEN`).
    pub token: bool,
    /// The served certificate (`--tls-cert`), under TLS.
    pub tls_cert: Option<PathBuf>,
    /// Whether the certificate names the host the line uses; `None` when it could not be read.
    pub cert_names_host: Option<bool>,
    /// The coordinator's `--tls-domain` (what its local workers check), when the certificate
    /// names it but not the host.
    pub tls_domain_named: Option<String>,
}

/// The attach command and what a person should know beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attach {
    /// `worker --coordinator URL [--token-file PATH] [--tls-ca PATH [--tls-domain NAME]]`, each
    /// word quoted for a POSIX shell where it needs it.
    pub command: String,
    /// The coordinator listens on a loopback address: only this machine can attach.
    pub loopback_only: bool,
    /// What the command needs beside itself (the token in the environment, a better name).
    pub notes: Vec<String>,
}

/// The host part of the URL, as `Inputs` gives it: `--advertise`, else this machine's name for
/// an unspecified address, else the address bound (IPv6 in brackets).
pub fn host(inputs: &Inputs) -> String {
    let bracket = |h: &str| if h.parse::<std::net::Ipv6Addr>().is_ok() { format!("[{h}]") } else { h.to_owned() };
    if let Some(h) = &inputs.advertise {
        return bracket(h);
    }
    match inputs.bound {
        Some(a) if a.ip().is_unspecified() => match &inputs.fqdn {
            Some(name) => bracket(name),
            None => "HOST".to_owned(),
        },
        Some(a) => bracket(&a.ip().to_string()),
        None => "HOST".to_owned(),
    }
}

/// The attach line for `inputs`.
pub fn line(inputs: &Inputs) -> Attach {
    let host = host(inputs);
    let port = inputs.bound.map_or(50051, |a| a.port());
    let scheme = if inputs.tls_cert.is_some() { "https" } else { "http" };
    let mut words = vec!["worker".to_owned(), "--coordinator".to_owned(), format!("{scheme}://{host}:{port}")];
    let mut notes = Vec::new();
    match &inputs.token_file {
        Some(f) => words.extend(["--token-file".to_owned(), absolute(f)]),
        None if inputs.token => notes.push(format!(
            "the worker needs the sweep's token: set {} to it there, or give --token-file FILE",
            gridsweep_proto::auth::TOKEN_ENV
        )),
        None => {}
    }
    if let Some(cert) = &inputs.tls_cert {
        words.extend(["--tls-ca".to_owned(), absolute(cert)]);
        if inputs.cert_names_host == Some(false) {
            match &inputs.tls_domain_named {
                Some(d) => words.extend(["--tls-domain".to_owned(), d.clone()]),
                None => notes.push(format!(
                    "the certificate does not name {host}: give --advertise a name it does, so that workers can \
                     check it"
                )),
            }
        }
    }
    let loopback_only = inputs.advertise.is_none() && inputs.bound.is_some_and(|a| a.ip().is_loopback());
    if loopback_only {
        notes.push(
            "it listens on loopback, so only workers on this machine can attach; for others, --listen \
             0.0.0.0:PORT with --token-file FILE"
                .to_owned(),
        );
    }
    if inputs.advertise.is_none() && inputs.fqdn.is_none() && inputs.bound.is_some_and(|a| a.ip().is_unspecified()) {
        notes.push("this machine's name could not be found: give --advertise HOST".to_owned());
    }
    Attach { command: words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" "), loopback_only, notes }
}

/// Gathers the inputs that need the file system or the resolver (this machine's name, the
/// certificate's names): blocking work, run it off the async runtime.
pub fn gather(
    bound: SocketAddr,
    advertise: Option<&str>,
    token_file: Option<&Path>,
    token: bool,
    tls: Option<(&Path, &str)>,
) -> Inputs {
    let mut inputs = Inputs {
        bound: Some(bound),
        advertise: advertise.map(str::to_owned),
        fqdn: if advertise.is_none() && bound.ip().is_unspecified() { fqdn() } else { None },
        token_file: token_file.map(Path::to_path_buf),
        token,
        tls_cert: tls.map(|(cert, _)| cert.to_path_buf()),
        ..Inputs::default()
    };
    if let Some((cert, domain)) = tls {
        let pem = std::fs::read(cert).ok();
        let names = |name: &str| pem.as_deref().and_then(|p| certificate_names(p, name));
        let h = host(&inputs);
        inputs.cert_names_host = names(h.trim_start_matches('[').trim_end_matches(']'));
        if inputs.cert_names_host == Some(false) && names(domain) == Some(true) {
            inputs.tls_domain_named = Some(domain.to_owned());
        }
    }
    inputs
}

/// The attach line of a `run` with `opts` bound at `bound` (the lookups on the blocking pool).
pub async fn of_run(opts: &super::RunOptions, bound: SocketAddr) -> Attach {
    let (advertise, token_file, token) = (opts.advertise.clone(), opts.token_file.clone(), opts.token.is_some());
    let tls = opts.tls.as_ref().map(|t| (t.cert.clone(), t.domain.clone()));
    let inputs = tokio::task::spawn_blocking(move || {
        let tls = tls.as_ref().map(|(c, d)| (c.as_path(), d.as_str()));
        gather(bound, advertise.as_deref(), token_file.as_deref(), token, tls)
    })
    .await
    .unwrap_or_default();
    line(&inputs)
}

/// Whether the first certificate of `pem` is valid for `name` (a DNS name or an IP address);
/// `None` when it cannot be parsed.
fn certificate_names(pem: &[u8], name: &str) -> Option<bool> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    let cert = webpki::EndEntityCert::try_from(&der).ok()?;
    let server = rustls_pki_types::ServerName::try_from(name.to_owned()).ok()?;
    Some(cert.verify_is_valid_for_subject_name(&server).is_ok())
}

/// `p` as an absolute path (not resolving links), so the line works from any directory.
fn absolute(p: &Path) -> String {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()).to_string_lossy().into_owned()
}

/// `w` quoted for a POSIX shell when it holds anything beyond a safe set.
fn quote(w: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,[]".contains(c);
    if !w.is_empty() && w.chars().all(safe) { w.to_owned() } else { format!("'{}'", w.replace('\'', "'\\''")) }
}

/// This machine's fully qualified name, as `hostname -f` finds it: the host name, then its
/// canonical name from the resolver (`/etc/hosts`, DNS); the plain host name when the resolver
/// does not know it. Blocking (a DNS lookup).
pub fn fqdn() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`, which we own.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0)?;
    let name = std::ffi::CString::new(&buf[..end]).ok()?;
    if name.as_bytes().is_empty() {
        return None;
    }
    let plain = name.to_string_lossy().into_owned();
    Some(canonical(&name).unwrap_or(plain))
}

/// The resolver's canonical name for `name` (getaddrinfo with AI_CANONNAME).
fn canonical(name: &std::ffi::CStr) -> Option<String> {
    // SAFETY: an all-zero addrinfo is the documented "no hints" value; we set two fields.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: `name` is NUL-terminated, `hints` lives across the call, and `res` receives a list
    // that we free below with freeaddrinfo, reading it only before that.
    let rc = unsafe { libc::getaddrinfo(name.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc != 0 || res.is_null() {
        return None;
    }
    // SAFETY: `res` is the non-null list getaddrinfo returned; ai_canonname, when set, is a
    // NUL-terminated string owned by that list, copied before the list is freed.
    let canon = unsafe {
        let c = (*res).ai_canonname;
        let out = (!c.is_null()).then(|| std::ffi::CStr::from_ptr(c).to_string_lossy().into_owned());
        libc::freeaddrinfo(res);
        out
    };
    canon.filter(|c| !c.is_empty() && c.parse::<IpAddr>().is_err())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(addr: &str) -> Inputs {
        Inputs { bound: Some(addr.parse().unwrap()), ..Inputs::default() }
    }

    #[test]
    fn an_unspecified_address_is_named_by_the_machine_or_advertise() {
        let mut i = at("0.0.0.0:50051");
        i.fqdn = Some("head.example.org".into());
        assert_eq!(line(&i).command, "worker --coordinator http://head.example.org:50051");
        i.advertise = Some("gpu-head".into());
        assert_eq!(line(&i).command, "worker --coordinator http://gpu-head:50051");
        let mut v6 = at("[::]:7000");
        v6.advertise = Some("fd00::1".into());
        assert_eq!(line(&v6).command, "worker --coordinator http://[fd00::1]:7000");
        let unknown = line(&at("0.0.0.0:1"));
        assert!(unknown.command.contains("http://HOST:1"), "{unknown:?}");
        assert!(unknown.notes.iter().any(|n| n.contains("--advertise")), "{unknown:?}");
    }

    #[test]
    fn a_specific_address_is_used_as_bound_and_loopback_is_said() {
        assert_eq!(line(&at("10.1.2.3:50051")).command, "worker --coordinator http://10.1.2.3:50051");
        let lo = line(&at("127.0.0.1:50051"));
        assert!(lo.loopback_only && lo.notes.iter().any(|n| n.contains("only workers on this machine")), "{lo:?}");
    }

    #[test]
    fn the_token_file_is_named_never_the_token() {
        let mut i = at("0.0.0.0:50051");
        i.fqdn = Some("h".into());
        i.token = true;
        i.token_file = Some("/srv/sweep token".into());
        assert_eq!(line(&i).command, "worker --coordinator http://h:50051 --token-file '/srv/sweep token'");
        i.token_file = Some("rel.token".into());
        let rel = line(&i).command;
        assert!(rel.ends_with("/rel.token") && rel.contains("--token-file /"), "{rel}");
        i.token_file = None;
        let env = line(&i);
        assert_eq!(env.command, "worker --coordinator http://h:50051");
        assert!(env.notes[0].contains("GRIDSWEEP_TOKEN"), "{env:?}");
    }

    #[test]
    fn tls_gives_https_the_ca_and_the_name_to_check() {
        let mut i = at("0.0.0.0:443");
        i.fqdn = Some("h".into());
        i.tls_cert = Some("/etc/gs/cert.pem".into());
        i.cert_names_host = Some(true);
        assert_eq!(line(&i).command, "worker --coordinator https://h:443 --tls-ca /etc/gs/cert.pem");
        i.cert_names_host = Some(false);
        i.tls_domain_named = Some("localhost".into());
        assert!(line(&i).command.ends_with("--tls-ca /etc/gs/cert.pem --tls-domain localhost"));
        i.tls_domain_named = None;
        assert!(line(&i).notes[0].contains("does not name h"));
    }

    #[test]
    fn words_with_shell_characters_are_quoted() {
        assert_eq!(quote("a'b c"), "'a'\\''b c'");
        assert_eq!(quote("/x/y-z_1.pem"), "/x/y-z_1.pem");
        assert_eq!(quote("$HOME"), "'$HOME'");
    }

    #[test]
    fn this_machine_has_a_name() {
        let name = fqdn().expect("a host name");
        assert!(!name.is_empty() && !name.contains('\0'), "{name:?}");
    }
}
