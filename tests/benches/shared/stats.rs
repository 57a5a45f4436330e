//! Statistics of the benches: nearest-rank percentiles, medians and ranges.

/// Nearest-rank percentile of sorted values.
pub fn pick<T: Copy>(sorted: &[T], p: f64) -> T {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The median (the mean of the middle two for an even count).
pub fn median_f64(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The smallest and the largest value.
pub fn range(values: &[f64]) -> (f64, f64) {
    (
        values.iter().copied().fold(f64::INFINITY, f64::min),
        values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    )
}

/// Median and p99 in µs of nanosecond samples.
pub fn median_p99_us(samples: &[u64]) -> (f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    (
        pick(&sorted, 0.5) as f64 / 1000.0,
        pick(&sorted, 0.99) as f64 / 1000.0,
    )
}
