//! [`ExceptionGroup`] (SPEC §14 K1): several errors raised together — what a
//! [`TaskGroup`](crate::TaskGroup) whose children failed returns, as
//! [`Error::Group`](crate::Error::Group) (Python's `ExceptionGroup`).
//!
//! Owns: the list of errors, its `Display` / `Debug`, and freeing it. Must not touch:
//! the loop or tasks — a group is a plain value that crosses threads, like every error.
//!
//! Groups nest (a group's child can fail with a group of its own). Walking them —
//! formatting and dropping — uses an explicit stack, so the depth of the nesting
//! never becomes the depth of the call stack (rule 3).

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use crate::error::Error;

/// The message of the groups a [`TaskGroup`](crate::TaskGroup) returns (asyncio's).
pub(crate) const TASK_GROUP_MESSAGE: &str = "unhandled errors in a TaskGroup";

/// Several errors, in the order they happened (Python's `ExceptionGroup`).
///
/// [`TaskGroup::join`](crate::TaskGroup::join) returns
/// `Err(Error::Group(group))` with the error of every child that failed, in completion
/// order. `Display` says how many there are and lists them; a group is cheap to clone
/// (the list is shared), `Send` and `Sync`.
///
/// ```
/// use evloop::{Error, ExceptionGroup};
///
/// let group = ExceptionGroup::new("two went wrong", vec![Error::msg("a"), Error::msg("b")]);
/// assert_eq!(group.errors().len(), 2);
/// assert_eq!(group.message(), "two went wrong");
/// assert_eq!(group.to_string(), "two went wrong (2 sub-exceptions): [a, b]");
///
/// let err = Error::Group(group);
/// assert!(err.is_group());
/// assert_eq!(err.as_group().unwrap().errors()[1].to_string(), "b");
/// ```
#[derive(Clone)]
pub struct ExceptionGroup {
    /// Always `Some`, except inside `drop` (which takes it to free nested groups
    /// without recursion). One pointer, so an [`Error`] stays three words (every
    /// future's outcome holds one).
    shared: Option<Arc<Shared>>,
}

struct Shared {
    message: Box<str>,
    errors: Box<[Error]>,
}

impl ExceptionGroup {
    /// A group of `errors` with a message (Python's `ExceptionGroup(message, errors)`).
    /// Unlike Python, an empty list is allowed.
    pub fn new(message: impl Into<String>, errors: Vec<Error>) -> ExceptionGroup {
        ExceptionGroup {
            shared: Some(Arc::new(Shared {
                message: message.into().into_boxed_str(),
                errors: errors.into_boxed_slice(),
            })),
        }
    }

    /// The group a task group returns (asyncio's message).
    pub(crate) fn of_task_group(errors: Vec<Error>) -> ExceptionGroup {
        ExceptionGroup::new(TASK_GROUP_MESSAGE, errors)
    }

    /// The errors, in the order they happened.
    pub fn errors(&self) -> &[Error] {
        self.shared.as_ref().map_or(&[], |shared| &shared.errors)
    }

    /// The message, without the list ("unhandled errors in a TaskGroup").
    pub fn message(&self) -> &str {
        self.shared.as_ref().map_or("", |shared| &shared.message)
    }

    /// `message (n sub-exceptions)`, as Python prints a group's first line.
    fn header(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors().len();
        let plural = if n == 1 { "" } else { "s" };
        write!(f, "{} ({n} sub-exception{plural})", self.message())
    }

    /// Writes the group and its nested groups with an explicit stack: a group is its
    /// header and `[` … `]`; any other error is written by `leaf`.
    fn walk(
        &self,
        f: &mut fmt::Formatter<'_>,
        header: fn(&ExceptionGroup, &mut fmt::Formatter<'_>) -> fmt::Result,
        leaf: fn(&Error, &mut fmt::Formatter<'_>) -> fmt::Result,
    ) -> fmt::Result {
        header(self, f)?;
        f.write_str(": [")?;
        let mut stack: Vec<(&[Error], usize)> = vec![(self.errors(), 0)];
        while let Some((errors, next)) = stack.last_mut() {
            let Some(error) = errors.get(*next) else {
                f.write_str("]")?;
                stack.pop();
                continue;
            };
            if *next > 0 {
                f.write_str(", ")?;
            }
            *next += 1;
            match error {
                Error::Group(group) => {
                    header(group, f)?;
                    f.write_str(": [")?;
                    stack.push((group.errors(), 0));
                }
                other => leaf(other, f)?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for ExceptionGroup {
    /// `message (n sub-exceptions): [first, second, …]`, nested groups inline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.walk(f, ExceptionGroup::header, fmt::Display::fmt)
    }
}

impl fmt::Debug for ExceptionGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.walk(
            f,
            |group, f| write!(f, "ExceptionGroup({:?})", group.message()),
            fmt::Debug::fmt,
        )
    }
}

impl StdError for ExceptionGroup {}

impl Drop for ExceptionGroup {
    /// Frees nested groups one level at a time (rule 3): the errors of a nested group
    /// whose list this group held last are moved to a worklist before the list is
    /// freed, so no drop recurses into the next level.
    fn drop(&mut self) {
        let mut next = self.shared.take();
        let mut stack: Vec<Arc<Shared>> = Vec::new();
        while let Some(mut shared) = next {
            if let Some(owned) = Arc::get_mut(&mut shared) {
                for error in owned.errors.iter_mut() {
                    if let Error::Group(group) = error {
                        stack.extend(group.shared.take());
                    }
                }
            }
            drop(shared);
            next = stack.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> ExceptionGroup {
        let mut group = ExceptionGroup::new("g", vec![Error::msg("leaf")]);
        for _ in 0..depth {
            group = ExceptionGroup::new("g", vec![Error::Group(group)]);
        }
        group
    }

    #[test]
    fn display_counts_and_lists_nested_groups() {
        let inner = ExceptionGroup::new("inner", vec![Error::msg("x")]);
        let outer = ExceptionGroup::new("outer", vec![Error::msg("a"), Error::Group(inner)]);
        assert_eq!(
            outer.to_string(),
            "outer (2 sub-exceptions): [a, inner (1 sub-exception): [x]]"
        );
        assert_eq!(
            format!("{outer:?}"),
            "ExceptionGroup(\"outer\"): [Exception(\"a\"), ExceptionGroup(\"inner\"): \
             [Exception(\"x\")]]"
        );
        let empty = ExceptionGroup::new("none", Vec::new());
        assert_eq!(empty.to_string(), "none (0 sub-exceptions): []");
    }

    #[test]
    fn deeply_nested_groups_format_and_drop_in_bounded_stack() {
        // Run on a small stack: recursion would overflow it.
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let group = nested(100_000);
                let clone = group.clone();
                let text = group.to_string();
                let closing = text.len() - text.trim_end_matches(']').len();
                assert_eq!(closing, 100_001, "one `]` per level");
                assert!(text.trim_end_matches(']').ends_with("[leaf"));
                drop(group);
                assert_eq!(clone.errors().len(), 1, "a clone keeps the shared list");
                drop(clone);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
