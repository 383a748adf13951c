//! A value that changes only at known instants: how time-dependent
//! decisions are precomputed so that a hot-path check is a lookup and a
//! comparison with "now".

/// A piecewise-constant function of time: `points[i].1` holds from
/// `points[i].0` (inclusive) until `points[i + 1].0` (exclusive). The first
/// point starts at the beginning of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline<T> {
    points: Box<[(i64, T)]>,
}

impl<T: Copy + PartialEq> Timeline<T> {
    /// A timeline that is `value` at every instant.
    pub fn constant(value: T) -> Self {
        Timeline {
            points: Box::new([(i64::MIN, value)]),
        }
    }

    /// Samples `f` at the beginning of time and at every breakpoint; the
    /// caller promises that `f` changes nowhere else. Equal neighbours merge.
    pub fn sample(mut breakpoints: Vec<i64>, f: impl Fn(i64) -> T) -> Self {
        breakpoints.push(i64::MIN);
        breakpoints.sort_unstable();
        breakpoints.dedup();
        let mut points: Vec<(i64, T)> = Vec::with_capacity(breakpoints.len());
        for t in breakpoints {
            let value = f(t);
            if points.last().is_none_or(|(_, last)| *last != value) {
                points.push((t, value));
            }
        }
        Timeline {
            points: points.into_boxed_slice(),
        }
    }

    /// The value at `t` and the instant it stops holding (`None`: never).
    #[inline]
    pub fn at(&self, t: i64) -> (T, Option<i64>) {
        // A handful of points at most for a license's life (start, expiry,
        // end of grace): a linear scan beats a binary search here.
        let points = &self.points;
        let mut i = 0;
        while i + 1 < points.len() && points[i + 1].0 <= t {
            i += 1;
        }
        (points[i].1, points.get(i + 1).map(|p| p.0))
    }

    /// Whether the value never changes.
    pub fn is_constant(&self) -> bool {
        self.points.len() == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_timeline_matches_the_function_everywhere() {
        let f = |t: i64| {
            if t < 10 {
                'a'
            } else if t < 20 {
                'b'
            } else {
                'a'
            }
        };
        let timeline = Timeline::sample(vec![20, 10, 10], f);
        for t in [-5, 9, 10, 15, 19, 20, 1000] {
            assert_eq!(timeline.at(t).0, f(t), "at {t}");
        }
        assert_eq!(timeline.at(9).1, Some(10));
        assert_eq!(timeline.at(25).1, None);
        assert!(Timeline::sample(vec![5], |_| 1).is_constant());
    }
}
