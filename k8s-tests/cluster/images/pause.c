/*
 * The pod sandbox's "pause" process: it holds the pod's namespaces open, reaps the zombies of
 * processes that end up as its children (it is PID 1 of a shared PID namespace) and exits
 * cleanly on SIGINT or SIGTERM. It does nothing else, so it can be a tiny static binary.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signal_number) {
  (void)signal_number;
  _exit(0);
}

static void reap(int signal_number) {
  (void)signal_number;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction on_stop = {.sa_handler = stop};
  struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &on_stop, NULL) < 0 || sigaction(SIGTERM, &on_stop, NULL) < 0 ||
      sigaction(SIGCHLD, &on_child, NULL) < 0) {
    return 2;
  }
  for (;;) {
    pause();
  }
}
