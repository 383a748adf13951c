//! A value that changes only at known instants: how time-dependent
//! decisions are precomputed so that a hot-path check is a lookup and a
//! comparison with "now".

/// A piecewise-constant function of time: each point's value holds from
/// its instant (inclusive) until the next point's (exclusive). The first
/// point starts at the beginning of time.
///
/// The first [`INLINE`] points are held in place, not behind a pointer: a
/// license's life has at most four (pending, in force, in grace, expired),
/// so the hot path reads its decision without following one more
/// pointer. Unused places hold `i64::MAX` (never reached) and the last
/// value; points past them are in `rest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline<T> {
    head: [(i64, T); INLINE],
    rest: Box<[(i64, T)]>,
}

/// Points a timeline holds in place.
pub const INLINE: usize = 4;

impl<T: Copy + PartialEq> Timeline<T> {
    /// A timeline that is `value` at every instant.
    pub fn constant(value: T) -> Self {
        Self::from_points(vec![(i64::MIN, value)], value)
    }

    /// Samples `f` at the beginning of time and at every breakpoint; the
    /// caller promises that `f` changes nowhere else. Equal neighbours merge.
    pub fn sample(mut breakpoints: Vec<i64>, f: impl Fn(i64) -> T) -> Self {
        breakpoints.retain(|t| *t != i64::MIN);
        breakpoints.sort_unstable();
        breakpoints.dedup();
        let first = f(i64::MIN);
        let mut points: Vec<(i64, T)> = Vec::with_capacity(breakpoints.len() + 1);
        points.push((i64::MIN, first));
        for t in breakpoints {
            let value = f(t);
            if points.last().is_none_or(|(_, last)| *last != value) {
                points.push((t, value));
            }
        }
        Self::from_points(points, first)
    }

    /// From points in increasing order, the first at `i64::MIN` with the
    /// value `first`.
    fn from_points(points: Vec<(i64, T)>, first: T) -> Self {
        let last = points.last().map_or(first, |p| p.1);
        let mut head = [(i64::MAX, last); INLINE];
        for (place, point) in head.iter_mut().zip(&points) {
            *place = *point;
        }
        Timeline {
            head,
            rest: points.get(INLINE..).unwrap_or_default().into(),
        }
    }

    /// The value at `t` and the instant it stops holding (`None`: never).
    #[inline]
    pub fn at(&self, t: i64) -> (T, Option<i64>) {
        // A fixed-length scan of the points in place (the compiler unrolls
        // it), then, rarely, of the rest.
        let head = &self.head;
        let mut i = 0;
        while i + 1 < INLINE && head[i + 1].0 <= t {
            i += 1;
        }
        if i + 1 < INLINE {
            let next = head[i + 1].0;
            return (head[i].1, (next != i64::MAX).then_some(next));
        }
        let mut value = head[INLINE - 1].1;
        let mut j = 0;
        while j < self.rest.len() && self.rest[j].0 <= t {
            value = self.rest[j].1;
            j += 1;
        }
        (value, self.rest.get(j).map(|p| p.0))
    }

    /// Whether the value never changes.
    pub fn is_constant(&self) -> bool {
        self.head[1].0 == i64::MAX && self.rest.is_empty()
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

    #[test]
    fn timelines_longer_than_the_inline_points_agree_everywhere() {
        // Seven changes: four points in place, the rest behind them.
        let f = |t: i64| (t.clamp(0, 70) / 10) % 3;
        let breakpoints: Vec<i64> = (0..=7).map(|k| k * 10).collect();
        let timeline = Timeline::sample(breakpoints, f);
        for t in -5..90 {
            let (value, until) = timeline.at(t);
            assert_eq!(value, f(t), "at {t}");
            // f is 0 before 0 and on [0, 10): the first change is at 10.
            let expected_until = (t < 70).then(|| ((t.div_euclid(10) + 1) * 10).max(10));
            assert_eq!(until, expected_until, "until, at {t}");
        }
        assert!(!timeline.is_constant());
        assert!(Timeline::constant(3).is_constant());
        assert_eq!(Timeline::constant(3).at(i64::MAX), (3, None));
    }
}
