//! Secret values never leave the process: every event is masked (see
//! [`crate::secrets`]) before the journal, the terminal, JSON output or a
//! report sees it.

use crate::event::{Event, Reporter};
use crate::secrets::Redactor;
use std::sync::Arc;

/// A reporter that masks secrets before passing events on.
pub struct Redacting {
    pub redactor: Arc<Redactor>,
    pub inner: Arc<dyn Reporter>,
}

impl Reporter for Redacting {
    fn event(&self, event: &Event) {
        if self.redactor.is_empty() {
            self.inner.event(event);
        } else {
            let mut event = event.clone();
            event.mask(&self.redactor);
            self.inner.event(&event);
        }
    }
}
