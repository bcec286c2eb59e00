// bindings/interrupt.h — Ctrl-C during a long C++ call (Network.train_epoch).
//
// Python handles SIGINT in two halves: a C handler records the signal, and the interpreter runs
// the Python-level handler (KeyboardInterrupt by default) at its next check between bytecodes.
// A thread inside train_epoch (GIL released) never reaches that check, so without help Ctrl-C
// waits for the end of the epoch. SigintWatch, for the duration of such a call on the main
// thread, installs a C handler that sets a stop flag and then calls the handler it replaced
// (Python's records the signal as usual). The epoch loop polls the flag between batches
// (network_run.cpp) and returns after the step in progress; the binding restores the old handler
// and runs Python's handlers (PyErr_CheckSignals): KeyboardInterrupt leaves the weights and the
// optimizer state as a whole number of steps left them; a handler that does not raise lets the
// epoch go on where it stopped.
//
// Trade-off, against re-acquiring the GIL every few milliseconds inside the loop to call
// PyErr_CheckSignals: the core needs no Python callback, other Python threads never wait for
// the GIL because of training, no Python code runs while the network's lock is held (a handler
// touching the model would deadlock), and a poll costs one relaxed atomic load per batch. The
// price: two sigaction calls per train_epoch call (only on the main thread, only when SIGINT has
// a handler: SIG_DFL and SIG_IGN are left alone), and a latency of one training step.
#pragma once
#include <atomic>

namespace mc_py {

class SigintWatch {
 public:
  // Watches when `active` (the caller runs several batches), the calling thread is Python's main
  // thread and SIGINT has a handler; otherwise flag() is null and nothing is installed.
  explicit SigintWatch(bool active);
  ~SigintWatch();
  SigintWatch(const SigintWatch&) = delete;
  SigintWatch& operator=(const SigintWatch&) = delete;
  // The stop flag for Network::train_epoch (null when not watching).
  const std::atomic<bool>* flag() const;

 private:
  bool installed_ = false;
};

// Records Python's main thread (called once, when the module is imported).
void init_sigint_watch();

}  // namespace mc_py
