//! How many duties an instance should hold: a pure rule, so that it is tested without a
//! database. Every instance applies it by itself at each tick; together they converge on an
//! even spread without talking to each other.

/// An instance's share of `duties` among `live` instances: the duties divided by the
/// instances, rounded up (so that every duty has room somewhere).
pub fn share(duties: usize, live: usize) -> usize {
    duties.div_ceil(live.max(1))
}

/// What an instance does at a tick.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// How many free duties it may take.
    pub take: usize,
    /// The duties it gives back (stopping them first), so that a newcomer finds work.
    pub give_back: Vec<String>,
}

/// The plan of an instance that holds `held` (in the order it prefers to keep them, most
/// wanted first) of `duties` duties among `live` instances.
pub fn plan(held: &[String], duties: usize, live: usize) -> Plan {
    let share = share(duties, live);
    if held.len() > share {
        Plan {
            take: 0,
            give_back: held[share..].to_vec(),
        }
    } else {
        Plan {
            take: share - held.len(),
            give_back: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("d{i}")).collect()
    }

    #[test]
    fn a_lone_instance_takes_everything() {
        assert_eq!(
            plan(&[], 8, 1),
            Plan {
                take: 8,
                give_back: vec![]
            }
        );
    }

    #[test]
    fn a_newcomer_makes_the_holder_give_back_above_its_share() {
        let held = names(8);
        let p = plan(&held, 8, 2);
        assert_eq!(p.take, 0);
        assert_eq!(p.give_back, names(8)[4..].to_vec());
        assert_eq!(plan(&[], 8, 2).take, 4);
    }

    #[test]
    fn three_instances_each_end_with_work_when_there_are_enough_duties() {
        // Simulate the ticks: A holds all, then B and C join.
        let duties = 8;
        let (mut a, mut b, mut c) = (names(8), Vec::new(), Vec::new());
        let mut free: Vec<String> = Vec::new();
        for _ in 0..4 {
            for held in [&mut a, &mut b, &mut c] {
                let p = plan(held, duties, 3);
                held.retain(|d| !p.give_back.contains(d));
                free.extend(p.give_back);
                let n = p.take.min(free.len());
                held.extend(free.drain(..n));
            }
        }
        assert!(free.is_empty(), "{free:?}");
        for held in [&a, &b, &c] {
            assert!(!held.is_empty() && held.len() <= 3, "{a:?} {b:?} {c:?}");
        }
        assert_eq!(a.len() + b.len() + c.len(), duties);
    }

    #[test]
    fn no_instance_is_counted_as_zero() {
        assert_eq!(share(5, 0), 5);
        assert_eq!(share(0, 3), 0);
    }
}
