//! Background threads that hold the database.

use std::sync::mpsc::{Receiver, SendError, Sender};
use std::thread::JoinHandle;

/// A named thread fed through a channel. Dropping the handle closes the channel and joins the
/// thread, so a thread holding the database never outlives its owner: rocksdb must be closed
/// before the process exits, not by a detached thread racing the exit handlers.
#[derive(Debug)]
pub struct Worker<T: Send + 'static> {
    tx: Option<Sender<T>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Worker<T> {
    /// Starts `run` on a thread called `name`; it gets the receiving end of the channel and
    /// should return once the channel is closed.
    pub fn spawn(name: &str, run: impl FnOnce(Receiver<T>) + Send + 'static) -> std::io::Result<Worker<T>> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || run(rx))?;
        Ok(Worker {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues `item` for the thread; gives it back if the thread has ended.
    pub fn send(&self, item: T) -> Result<(), T> {
        match &self.tx {
            Some(tx) => tx.send(item).map_err(|SendError(item)| item),
            None => Err(item),
        }
    }
}

impl<T: Send + 'static> Drop for Worker<T> {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn dropping_the_handle_drains_and_joins_the_thread() {
        let seen = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(());
        let worker = {
            let seen = seen.clone();
            let held = held.clone();
            Worker::spawn("test-worker", move |rx: Receiver<usize>| {
                let _held = held;
                for n in rx {
                    seen.fetch_add(n, Ordering::SeqCst);
                }
            })
            .unwrap()
        };
        worker.send(2).unwrap();
        worker.send(3).unwrap();
        drop(worker);
        // Joined: every item was handled and the thread's references are gone.
        assert_eq!(seen.load(Ordering::SeqCst), 5);
        assert_eq!(Arc::strong_count(&held), 1);
    }
}
