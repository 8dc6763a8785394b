//! `skewer limits show|set|unset`: the operator's view of a deployment's limits in its catalog
//! database; without one, `show` prints the config file's `[limits]` and changes are refused
//! (they are made in the file).

use anyhow::Context;
use serde_json::Value;
use skewer_ingest::limits::LimitsConfig;

use super::edit::parse_assignment;
use super::{LimitsEdit, SharedLimits};
use crate::cli::{LimitsCommand, LimitsConfigArgs};
use crate::config::{Config, Overrides};

/// Runs one `skewer limits` subcommand.
pub fn run(command: &LimitsCommand) -> anyhow::Result<()> {
    let args: &LimitsConfigArgs = match command {
        LimitsCommand::Show(args) => args,
        LimitsCommand::Set(args) => &args.config,
        LimitsCommand::Unset(args) => &args.config,
    };
    let (config, _) = Config::load(args.config.as_deref(), Overrides::default())?;
    let Some(url) = config.catalog.url()? else {
        if let LimitsCommand::Show(_) = command {
            print!(
                "{}",
                render(&config.limits, "the config file (no catalog database)")
            );
            return Ok(());
        }
        anyhow::bail!(
            "this config names no catalog database ([catalog] url): a lone node's limits are its \
             config file's [limits]; change them there and restart"
        );
    };
    let edit = match command {
        LimitsCommand::Show(_) => None,
        LimitsCommand::Set(args) => Some(LimitsEdit::Set {
            tenant: args.tenant.clone(),
            values: args
                .values
                .iter()
                .map(|text| parse_assignment(text))
                .collect::<Result<_, _>>()?,
        }),
        LimitsCommand::Unset(args) => {
            if args.tenant.is_none() && args.keys.is_empty() {
                anyhow::bail!(
                    "name the limits to lift (KEY…), or a tenant whose own to drop (--tenant)"
                );
            }
            Some(LimitsEdit::Unset {
                tenant: args.tenant.clone(),
                keys: args.keys.clone(),
            })
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let shared = SharedLimits::connect(&url)
            .await
            .context("cannot reach the catalog database that keeps the limits")?;
        let (version, limits) = match &edit {
            None => shared.load().await?.unwrap_or((0, config.limits.clone())),
            // Before any node started, the config file's limits are the base of the change.
            Some(edit) => {
                shared.seed(&config.limits).await?;
                shared.change(edit).await?
            }
        };
        let source = if version == 0 {
            "the config file; no node has written the catalog database's yet".to_owned()
        } else {
            format!("the catalog database, version {version}")
        };
        if edit.is_some() {
            println!("# changed; every node follows within one catalog refresh");
        }
        print!("{}", render(&limits, &source));
        Ok(())
    })
}

/// `limits` as a `[limits]` table of a config file, with a comment saying where they come from.
pub fn render(limits: &LimitsConfig, source: &str) -> String {
    let mut text = format!("# tenant limits in force, from {source}; 0 is unlimited\n[limits]\n");
    let Ok(Value::Object(object)) = serde_json::to_value(limits) else {
        return text;
    };
    let mut tenants = None;
    for (key, value) in &object {
        if key == "tenants" {
            tenants = Some(value);
        } else {
            text.push_str(&format!("{key} = {value}\n"));
        }
    }
    if let Some(Value::Object(tenants)) = tenants {
        for (tenant, own) in tenants {
            text.push_str(&format!("\n[limits.tenants.{}]\n", toml_key(tenant)));
            if let Value::Object(own) = own {
                for (key, value) in own {
                    text.push_str(&format!("{key} = {value}\n"));
                }
            }
        }
    }
    text
}

/// A TOML key: bare when it can be, quoted otherwise.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_limits_read_back_as_the_config_files_limits() {
        let mut limits = LimitsConfig {
            max_tenants: 4,
            ingest_records_per_second: 1000,
            ..LimitsConfig::default()
        };
        for tenant in ["acme", "team.blue"] {
            limits.tenants.insert(
                tenant.to_owned(),
                skewer_ingest::limits::TenantLimitOverrides {
                    query_max_concurrent: Some(3),
                    ..Default::default()
                },
            );
        }
        #[derive(serde::Deserialize)]
        struct File {
            limits: LimitsConfig,
        }
        let text = render(&limits, "a test");
        let read: File = toml::from_str(&text).unwrap();
        assert_eq!(read.limits, limits, "{text}");
    }
}
