//! The stand-in receivers keep the routing as written, and the pager records real webhook
//! calls as Alertmanager sends them.

use std::time::Duration;

use serde_yaml_ng::Value;

use super::monitoring::stand_in_receivers;
use super::pager::Pager;
use super::pages;
use crate::binaries::workspace_root;
use crate::check::alerts::Layout;

#[tokio::test]
async fn receivers_point_at_the_pager_and_the_routing_stays() -> anyhow::Result<()> {
    let pager = Pager::start().await?;
    let path = Layout::new(&workspace_root()).alertmanager_config();
    let original: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path)?)?;
    let stood_in: Value = serde_yaml_ng::from_str(&stand_in_receivers(
        &serde_yaml_ng::to_string(&original)?,
        &pager,
    )?)?;
    assert_eq!(stood_in["route"], original["route"]);
    assert_eq!(stood_in["inhibit_rules"], original["inhibit_rules"]);
    let receivers = stood_in["receivers"].as_sequence().into_iter().flatten();
    let mut webhooks = 0;
    for receiver in receivers {
        let name = receiver["name"].as_str().unwrap_or_default();
        for webhook in receiver["webhook_configs"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            assert_eq!(webhook["url"].as_str(), Some(pager.url(name).as_str()));
            webhooks += 1;
        }
    }
    assert!(webhooks >= 2, "{stood_in:?}");
    Ok(())
}

#[tokio::test]
async fn a_receiver_without_a_stand_in_is_refused() -> anyhow::Result<()> {
    let pager = Pager::start().await?;
    let config =
        "route: {receiver: mail}\nreceivers:\n  - name: mail\n    email_configs: [{to: a@b.c}]\n";
    let error = stand_in_receivers(config, &pager)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("email_configs"), "{error}");
    Ok(())
}

#[tokio::test]
async fn the_pager_records_webhook_calls_and_finds_the_pages() -> anyhow::Result<()> {
    let pager = Pager::start().await?;
    let client = reqwest::Client::new();
    let body = |status: &str, severity: &str| {
        serde_json::json!({
            "receiver": "x", "status": status,
            "alerts": [{"status": status, "labels": {"alertname": "A", "severity": severity}}],
        })
    };
    // A warning on the chat, a resolved critical, then a firing one: one page, on one
    // kept-alive connection as Alertmanager sends them.
    for (receiver, status, severity) in [
        ("chat", "firing", "warning"),
        ("pager", "resolved", "critical"),
        ("pager", "firing", "critical"),
    ] {
        let answer = client
            .post(pager.url(receiver))
            .json(&body(status, severity))
            .timeout(Duration::from_secs(5))
            .send()
            .await?;
        assert_eq!(answer.status(), 200);
    }
    let received = pager.received();
    assert_eq!(received.len(), 3);
    let found: Vec<Vec<String>> = pages(&received, "pager").map(|(_, a)| a).collect();
    assert_eq!(found, vec![vec!["A".to_owned()]]);
    assert!(pages(&received, "chat").next().is_none());
    Ok(())
}
