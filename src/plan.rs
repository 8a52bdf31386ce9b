//! From the command line to the checks to run: HAProxy's four arguments
//! (one check), one or more URLs, or every server of a pool read from
//! haproxy.cfg, each with the config-file sections that apply to it.

use std::ffi::OsString;

use crate::check::Job;
use crate::cli::Cli;
use crate::config::{self, Applied};
use crate::haproxy_cfg;
use crate::invocation::{self, Invocation};
use crate::report::Context;
use crate::settings::{self, Settings};
use crate::verdict::Failure;

/// A check ready to run, with what the config file gave it (for --explain).
pub struct Planned {
    pub job: Job,
    pub applied: Option<Applied>,
}

pub fn build(
    typed: &Cli,
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Planned>, Failure> {
    if let Some(path) = &typed.haproxy_cfg {
        if !typed.targets.is_empty() {
            return Err(Failure::Usage(
                "--haproxy-cfg reads the targets from the file: give no targets".into(),
            ));
        }
        return pool(typed, args, env, path);
    }
    let (cli, applied) = config::apply(typed, args, env)?;
    let urls = cli.targets.iter().any(|t| t.contains("://"));
    if urls && cli.targets.len() > 1 {
        return cli
            .targets
            .iter()
            .map(|url| {
                let inv = invocation::parse(std::slice::from_ref(url), env)?;
                Ok(Planned {
                    job: Job::Ready(Box::new(settings::resolve(&cli, typed, &inv)?)),
                    applied: applied.clone(),
                })
            })
            .collect();
    }
    let inv = invocation::parse(&cli.targets, env)?;
    let settings = settings::resolve(&cli, typed, &inv)?;
    Ok(vec![Planned {
        job: Job::Ready(Box::new(settings)),
        applied,
    }])
}

/// Every enabled server of the selected backends. A server whose settings
/// are wrong fails alone (exit 2 in its outcome); the pool is still checked.
fn pool(
    typed: &Cli,
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
    path: &std::path::Path,
) -> Result<Vec<Planned>, Failure> {
    let cfg = haproxy_cfg::load(path)?;
    let backends = cfg.select(&typed.backend)?;
    let file = config::find(typed, args, env)?;
    let mut planned = Vec::new();
    for backend in backends {
        for server in backend.servers.iter().filter(|s| !s.disabled) {
            let (addr, port) = server.check_target();
            let prepared = config::merge(
                file.as_ref(),
                typed,
                args,
                Some(backend.name.clone()),
                Some(server.name.clone()),
            )
            .and_then(|(cli, applied)| {
                let inv = Invocation {
                    haproxy: false,
                    endpoint: invocation::parse_server(&addr, &port)?,
                    service: None,
                    scheme: None,
                    server_ssl: server.ssl,
                    backend: Some(backend.name.clone()),
                    server: Some(server.name.clone()),
                };
                Ok((settings::resolve(&cli, typed, &inv)?, applied))
            });
            planned.push(match prepared {
                Ok((settings, applied)) => Planned {
                    job: Job::Ready(Box::new(settings)),
                    applied,
                },
                Err(failure) => Planned {
                    job: Job::Failed(
                        Context {
                            haproxy: false,
                            backend: Some(backend.name.clone()),
                            server: Some(server.name.clone()),
                            target: format!("{addr}:{port}"),
                            probe: "-".into(),
                        },
                        failure,
                    ),
                    applied: None,
                },
            });
        }
    }
    if planned.is_empty() {
        return Err(Failure::Usage(format!(
            "{}: no enabled server in the selected backends",
            cfg.path.display()
        )));
    }
    Ok(planned)
}

impl Planned {
    pub fn settings(&self) -> Option<&Settings> {
        match &self.job {
            Job::Ready(s) => Some(s),
            Job::Failed(..) => None,
        }
    }
}
