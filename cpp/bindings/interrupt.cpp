// bindings/interrupt.cpp — SigintWatch (see interrupt.h): a chained SIGINT handler that sets the
// stop flag the epoch loop polls. POSIX only; elsewhere it watches nothing (Ctrl-C then waits for
// the end of the call, as before).
#include "interrupt.h"

#include <pybind11/pybind11.h>

#if !defined(_WIN32)
#include <signal.h>
#endif

namespace mc_py {

namespace py = pybind11;

namespace {

std::atomic<bool> g_stop{false};  // set by the handler; lock-free, so async-signal-safe
unsigned long g_main_thread = 0;  // threading.main_thread().ident

#if !defined(_WIN32)
struct sigaction g_previous;  // the handler SigintWatch replaced (Python's), called after ours

void on_sigint(int sig, siginfo_t* info, void* context) {
  g_stop.store(true, std::memory_order_relaxed);
  if (g_previous.sa_flags & SA_SIGINFO)
    g_previous.sa_sigaction(sig, info, context);
  else
    g_previous.sa_handler(sig);
}
#endif

}  // namespace

void init_sigint_watch() {
  g_main_thread = py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
}

SigintWatch::SigintWatch(bool active) {
#if !defined(_WIN32)
  if (!active || PyThread_get_thread_ident() != g_main_thread) return;
  struct sigaction current;
  if (sigaction(SIGINT, nullptr, &current) != 0) return;
  const bool has_handler = (current.sa_flags & SA_SIGINFO) ||
                           (current.sa_handler != SIG_DFL && current.sa_handler != SIG_IGN);
  if (!has_handler) return;
  g_previous = current;
  g_stop.store(false, std::memory_order_relaxed);
  struct sigaction ours = {};
  ours.sa_sigaction = on_sigint;
  ours.sa_mask = current.sa_mask;
  ours.sa_flags = SA_SIGINFO | (current.sa_flags & (SA_ONSTACK | SA_RESTART));
  installed_ = sigaction(SIGINT, &ours, nullptr) == 0;
#else
  (void)active;
#endif
}

SigintWatch::~SigintWatch() {
#if !defined(_WIN32)
  if (installed_) sigaction(SIGINT, &g_previous, nullptr);
#endif
}

const std::atomic<bool>* SigintWatch::flag() const { return installed_ ? &g_stop : nullptr; }

}  // namespace mc_py
