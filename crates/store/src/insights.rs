//! The arithmetic of anomaly detection and forecasting over rollup series: pure functions, no
//! storage.
//!
//! Anomalies compare a window with its own history: with at least three values from the same
//! time of day on earlier days, a robust z-score against their median and MAD (so one earlier
//! spike does not hide the next); with less, an exponentially weighted mean and variance of the
//! windows just before. Forecasts use additive Holt-Winters (level, trend, daily season) with two
//! days of hourly history or more, Holt's linear trend with less, and the mean with very little.

/// How a window compares with its baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// What the baseline expected.
    pub baseline: f64,
    /// Standard deviations (robust or EWMA) above (+) or below (−) the baseline.
    pub z: f64,
    pub method: &'static str,
}

/// The MAD of normally distributed data times this is its standard deviation.
const MAD_SIGMA: f64 = 1.4826;

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Robust z-score of `x` against `seasonal` (the same window on earlier days); `None` with
/// fewer than three of them.
pub fn seasonal(x: f64, seasonal: &[f64]) -> Option<Score> {
    if seasonal.len() < 3 {
        return None;
    }
    let mut v = seasonal.to_vec();
    let med = median(&mut v);
    let mut dev: Vec<f64> = seasonal.iter().map(|s| (s - med).abs()).collect();
    let mad = median(&mut dev) * MAD_SIGMA;
    // A flat history has no spread; a floor keeps the score finite and meaningful.
    let sigma = mad.max(0.05 * med.abs()).max(1e-9);
    Some(Score {
        baseline: med,
        z: (x - med) / sigma,
        method: "seasonal",
    })
}

/// z-score of `x` against an EWMA of `recent` (oldest first); `None` with fewer than four.
pub fn ewma(x: f64, recent: &[f64], alpha: f64) -> Option<Score> {
    let (&first, rest) = recent.split_first()?;
    if recent.len() < 4 {
        return None;
    }
    let mut mean = first;
    let mut var = 0.0;
    for &r in rest {
        let d = r - mean;
        mean += alpha * d;
        var = (1.0 - alpha) * (var + alpha * d * d);
    }
    let sigma = var.sqrt().max(0.05 * mean.abs()).max(1e-9);
    Some(Score {
        baseline: mean,
        z: (x - mean) / sigma,
        method: "ewma",
    })
}

/// A forecast of the next `horizon` values of an hourly series.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub values: Vec<f64>,
    pub method: &'static str,
}

/// Forecasts an hourly series (oldest first); values are never negative.
pub fn forecast(history: &[f64], horizon: usize) -> Forecast {
    const SEASON: usize = 24;
    let (values, method) = if history.len() >= 2 * SEASON {
        (holt_winters(history, SEASON, horizon), "holt_winters")
    } else if history.len() >= 3 {
        (holt(history, horizon), "holt")
    } else if history.is_empty() {
        (vec![0.0; horizon], "none")
    } else {
        let mean = history.iter().sum::<f64>() / history.len() as f64;
        (vec![mean; horizon], "mean")
    };
    Forecast {
        values: values.into_iter().map(|v| v.max(0.0)).collect(),
        method,
    }
}

/// Holt's linear trend (α = 0.5, β = 0.1).
fn holt(h: &[f64], horizon: usize) -> Vec<f64> {
    let (alpha, beta) = (0.5, 0.1);
    let mut level = h[0];
    let mut trend = h[1] - h[0];
    for &x in &h[1..] {
        let last = level;
        level = alpha * x + (1.0 - alpha) * (level + trend);
        trend = beta * (level - last) + (1.0 - beta) * trend;
    }
    (1..=horizon).map(|k| level + k as f64 * trend).collect()
}

/// Additive Holt-Winters (α = 0.3, β = 0.02, γ = 0.2), seeded from the first two seasons.
fn holt_winters(h: &[f64], m: usize, horizon: usize) -> Vec<f64> {
    let (alpha, beta, gamma) = (0.3, 0.02, 0.2);
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let first = mean(&h[..m]);
    let second = mean(&h[m..2 * m]);
    let mut level = first;
    let mut trend = (second - first) / m as f64;
    let mut season: Vec<f64> = h[..m].iter().map(|x| x - first).collect();
    for (t, &x) in h.iter().enumerate().skip(m) {
        let s = season[t % m];
        let last = level;
        level = alpha * (x - s) + (1.0 - alpha) * (level + trend);
        trend = beta * (level - last) + (1.0 - beta) * trend;
        season[t % m] = gamma * (x - level) + (1.0 - gamma) * s;
    }
    let n = h.len();
    (1..=horizon)
        .map(|k| level + k as f64 * trend + season[(n + k - 1) % m])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_stands_out_of_its_seasonal_history_and_one_old_spike_does_not_hide_it() {
        let history = [100.0, 104.0, 97.0, 2000.0, 101.0, 99.0, 103.0];
        let s = seasonal(2000.0, &history).unwrap();
        assert!((s.baseline - 101.0).abs() < 1e-9);
        assert!(s.z > 100.0, "{s:?}");
        let normal = seasonal(105.0, &history).unwrap();
        assert!(normal.z.abs() < 2.0, "{normal:?}");
        assert!(seasonal(1.0, &[1.0, 2.0]).is_none());
    }

    #[test]
    fn ewma_follows_short_history() {
        let recent = [10.0, 11.0, 9.0, 10.0, 10.5, 9.5];
        assert!(ewma(10.0, &recent, 0.3).unwrap().z.abs() < 2.0);
        assert!(ewma(200.0, &recent, 0.3).unwrap().z > 20.0);
        assert!(ewma(1.0, &[1.0, 1.0], 0.3).is_none());
    }

    #[test]
    fn holt_winters_keeps_the_daily_shape_and_the_trend() {
        // A week of hourly traffic: busy days (hours 8–20) and a slow rise.
        let series: Vec<f64> = (0..168)
            .map(|t| {
                let hour = t % 24;
                let busy = if (8..20).contains(&hour) { 100.0 } else { 20.0 };
                busy + t as f64 * 0.1
            })
            .collect();
        let f = forecast(&series, 24);
        assert_eq!(f.method, "holt_winters");
        // Hour 168 is midnight (slow), hour 168 + 12 is noon (busy).
        assert!(f.values[0] < 50.0, "{:?}", &f.values[..3]);
        assert!(
            (f.values[12] - (100.0 + 180.0 * 0.1)).abs() < 10.0,
            "{}",
            f.values[12]
        );
        assert_eq!(forecast(&[1.0, 2.0, 3.0, 4.0], 2).method, "holt");
        let up = forecast(&[1.0, 2.0, 3.0, 4.0], 2).values;
        assert!(up[1] > up[0] && up[0] > 4.0, "{up:?}");
        assert_eq!(forecast(&[], 3).values, vec![0.0; 3]);
        assert!(forecast(&[5.0, 0.0, 0.0, 0.0, 0.0], 50)
            .values
            .iter()
            .all(|v| *v >= 0.0));
    }
}
