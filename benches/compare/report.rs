//! Medians over runs, and the tables.

use std::collections::BTreeMap;

use crate::engines::Kind;
use crate::workload::Measurement;

/// Every cell of every run, keyed by (workload, value size, engine).
#[derive(Default)]
pub struct Results {
    cells: BTreeMap<(usize, usize, usize), Vec<Measurement>>,
}

/// The median of a cell over the runs, each figure taken on its own.
#[derive(Debug, Clone, Copy)]
pub struct Median {
    pub ops_per_sec: f64,
    pub p50_ns: f64,
    pub p99_ns: f64,
}

fn engine_index(kind: Kind) -> usize {
    Kind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("known engine")
}

impl Results {
    pub fn add(&mut self, workload: usize, value_len: usize, kind: Kind, m: Measurement) {
        let key = (workload, value_len, engine_index(kind));
        self.cells.entry(key).or_default().push(m);
    }

    /// Run `run`'s measurement of a cell (runs count from 0).
    pub fn run(
        &self,
        workload: usize,
        value_len: usize,
        kind: Kind,
        run: usize,
    ) -> Option<&Measurement> {
        self.cells
            .get(&(workload, value_len, engine_index(kind)))?
            .get(run)
    }

    pub fn median(&self, workload: usize, value_len: usize, kind: Kind) -> Option<Median> {
        let runs = self.cells.get(&(workload, value_len, engine_index(kind)))?;
        Some(Median {
            ops_per_sec: median(runs.iter().map(|m| m.ops_per_sec)),
            p50_ns: median(runs.iter().map(|m| m.p50_ns)),
            p99_ns: median(runs.iter().map(|m| m.p99_ns)),
        })
    }
}

/// The median (the mean of the middle two for an even count); NaN if empty.
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// `1234567.8` as `1,234,568`; small rates keep one decimal.
pub fn ops(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    if x < 100.0 {
        return format!("{x:.1}");
    }
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Nanoseconds in the unit that reads best.
pub fn latency(ns: f64) -> String {
    if !ns.is_finite() {
        "-".into()
    } else if ns < 10_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

pub fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "-".into()
    }
}

pub fn size(len: usize) -> String {
    if len >= 1024 && len.is_multiple_of(1024) {
        format!("{} KiB", len / 1024)
    } else {
        format!("{len} B")
    }
}

/// The main table: one row per workload and value size, an engine per
/// column group, then strongroom's ratios.
pub fn print_table(results: &Results, workloads: &[(usize, &str)], value_lens: &[usize]) {
    println!(
        "| workload | value | strongroom ops/s | p50 | p99 | RocksDB ops/s | p50 | p99 \
         | SQLCipher ops/s | p50 | p99 | strongroom/RocksDB | strongroom/SQLCipher |"
    );
    println!("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for &(w, name) in workloads {
        for &len in value_lens {
            let cells: Vec<Option<Median>> = Kind::ALL
                .iter()
                .map(|k| results.median(w, len, *k))
                .collect();
            if cells.iter().all(Option::is_none) {
                continue;
            }
            let mut row = format!("| {name} | {} |", size(len));
            for cell in &cells {
                match cell {
                    Some(m) => row.push_str(&format!(
                        " {} | {} | {} |",
                        ops(m.ops_per_sec),
                        latency(m.p50_ns),
                        latency(m.p99_ns)
                    )),
                    None => row.push_str(" - | - | - |"),
                }
            }
            let rate = |i: usize| cells[i].map_or(f64::NAN, |m| m.ops_per_sec);
            row.push_str(&format!(
                " {} | {} |",
                ratio(rate(0), rate(1)),
                ratio(rate(0), rate(2))
            ));
            println!("{row}");
        }
    }
}
