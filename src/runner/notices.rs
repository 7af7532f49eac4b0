//! What a sweep tells the person running it besides its progress display: events that a
//! program calling the library receives through `Notices`, and that the command line
//! prints (`Printed`). The runner itself writes none of them to standard output.

use std::fmt;

/// One thing worth saying, as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The study asks for TF32 on a device where products are plain f32.
    Tf32Ignored { device: String },
    /// A finished run's results cannot be read back, so it trains again.
    Retraining { run: String, why: String },
    /// A finished run (done or diverged) with the same run id is kept as it is.
    Kept {
        run: String,
        status: String,
        run_id: String,
    },
    /// Results an earlier version wrote were moved into today's layout.
    ResultsMoved { what: String },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Tf32Ignored { device } => write!(
                f,
                "note: `execution.tf32` applies to CUDA only; on {device} products are f32"
            ),
            Notice::Retraining { run, why } => write!(f, "{run}: {why}; training it again"),
            Notice::Kept {
                run,
                status,
                run_id,
            } => write!(
                f,
                "keeping {run} ({status}, run id {run_id}; --force retrains it)"
            ),
            Notice::ResultsMoved { what } => {
                write!(f, "results of an earlier version moved: {what}")
            }
        }
    }
}

/// Where notices go.
pub trait Notices {
    fn notice(&mut self, notice: Notice);
}

/// The command line's sink: each notice printed on standard output as a line.
pub struct Printed;

impl Notices for Printed {
    fn notice(&mut self, notice: Notice) {
        println!("{notice}");
    }
}

/// A program's (or a test's) sink: the notices kept in order.
impl Notices for Vec<Notice> {
    fn notice(&mut self, notice: Notice) {
        self.push(notice);
    }
}
