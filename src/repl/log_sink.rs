//! Where log lines go: stderr, or, while a line-editing prompt is shown, above the prompt
//! (through the editor's printer) so that logs never garble what the user is typing.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// Prints above the prompt.
type Printer = Box<dyn FnMut(String) + Send>;

static PRINTER: OnceLock<Mutex<Printer>> = OnceLock::new();

/// Sends every later log line through `printer`.
pub fn set_printer(printer: Printer) {
    let _ = PRINTER.set(Mutex::new(printer));
}

/// A `MakeWriter` for tracing-subscriber.
pub struct LogSink;

/// Buffers one log event, written out whole on drop.
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        match PRINTER.get() {
            // The lock only guards the printer handle, never held across an await.
            Some(p) => {
                if let Ok(mut p) = p.lock() {
                    p(String::from_utf8_lossy(&bytes).into_owned());
                }
            }
            None => {
                let _ = std::io::stderr().write_all(&bytes);
            }
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = LogLine;
    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}
