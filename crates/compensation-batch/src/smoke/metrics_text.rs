//! The samples of one metric in a Prometheus text (or OpenMetrics text) exposition:
//! `name{label="value",...} value [timestamp]`, with `\\`, `\"` and `\n` escaped in label
//! values. Only what the smoke test reads, but read as the format says, not by prefix.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of `metric` in `text`; a malformed sample line of it is an error naming the
/// line. Other metrics (also those whose name merely starts with `metric`) are skipped.
pub fn samples(text: &str, metric: &str) -> Result<Vec<Sample>, String> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        if !rest.starts_with(['{', ' ', '\t']) {
            continue;
        }
        let sample =
            parse(rest).map_err(|problem| format!("line {}: {problem}: {line:?}", number + 1))?;
        found.push(sample);
    }
    Ok(found)
}

/// A sample line after its metric name.
fn parse(rest: &str) -> Result<Sample, &'static str> {
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inner) => labels(inner)?,
        None => (BTreeMap::new(), rest),
    };
    let value = rest
        .split_whitespace()
        .next()
        .ok_or("no value")?
        .parse::<f64>()
        .map_err(|_| "value is not a number")?;
    Ok(Sample { labels, value })
}

/// The label set after its `{`, and what follows its `}`.
fn labels(text: &str) -> Result<(BTreeMap<String, String>, &str), &'static str> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest.split_once('=').ok_or("label without '='")?;
        let name = name.trim();
        if name.is_empty() {
            return Err("label without a name");
        }
        let after = after
            .trim_start()
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let (value, after) = quoted(after)?;
        labels.insert(name.to_owned(), value);
        rest = after.trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("labels not separated by ','");
        }
    }
}

/// A label value after its opening quote, unescaped, and what follows its closing quote.
fn quoted(text: &str) -> Result<(String, &str), &'static str> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[at + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, escaped)) => value.push(escaped),
                None => return Err("label value ends in '\\'"),
            },
            c => value.push(c),
        }
    }
    Err("label value not closed")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reads_the_samples_of_one_metric_only() -> Result<(), String> {
        // As the consumer exports it (OpenMetrics), with neighbours that share the prefix.
        let text = "\
# HELP kafka_consumer_lag Messages behind the partition's end.
# TYPE kafka_consumer_lag gauge
kafka_consumer_lag{topic=\"coupon-issue\",partition=\"0\"} 3
kafka_consumer_lag{topic=\"coupon-issue\",partition=\"2\"} 40
kafka_consumer_lag_total 99
kafka_consumer_lagging{partition=\"1\"} 7
kafka_consumer_connection_count 1
# EOF
";
        let found = samples(text, "kafka_consumer_lag")?;
        assert_eq!(
            found,
            [
                Sample {
                    labels: labels(&[("topic", "coupon-issue"), ("partition", "0")]),
                    value: 3.0
                },
                Sample {
                    labels: labels(&[("topic", "coupon-issue"), ("partition", "2")]),
                    value: 40.0
                },
            ]
        );
        Ok(())
    }

    #[test]
    fn reads_the_whole_text_format() -> Result<(), String> {
        // Escapes, spaces, a trailing comma, a timestamp, no labels, float notation.
        let text = "\
m{a=\"x\\\"y\", b = \"1\\\\2\\n\",} 1.5e3 1712345678000
m 7
m{} -0
";
        let found = samples(text, "m")?;
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].labels, labels(&[("a", "x\"y"), ("b", "1\\2\n")]));
        assert_eq!(found[0].value, 1500.0);
        assert!(found[1].labels.is_empty());
        assert_eq!(found[1].value, 7.0);
        assert_eq!(found[2].value, 0.0);
        Ok(())
    }

    #[test]
    fn a_broken_sample_line_is_an_error_naming_it() {
        for (line, problem) in [
            ("m{a=\"1\"} x", "value is not a number"),
            ("m{a=\"1\"}", "no value"),
            ("m{a=1} 2", "label value not quoted"),
            ("m{a=\"1} 2", "label value not closed"),
            ("m{a=\"1\" b=\"2\"} 2", "labels not separated by ','"),
        ] {
            let text = format!("ok 1\n{line}\n");
            let error = samples(&text, "m").err().unwrap_or_default();
            assert!(error.starts_with("line 2: "), "{line}: {error}");
            assert!(error.contains(problem), "{line}: {error}");
        }
    }
}
