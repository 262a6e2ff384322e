/* sim_probe: the program the simulator tests run as an enclave. Statically linked, so its root
 * filesystem is this one file. Each argument is one action; results go to stdout (the console):
 *   tcp:IP:PORT   try a TCP connection (2 s) and print connected|refused|unreachable|timeout|error
 *   absent:PATH   print whether PATH exists inside the enclave
 *   env:NAME      print NAME's value
 *   alloc:MIB     allocate and touch MIB MiB, print "alloc MIB ok" if that worked
 *   cat:PATH      print the file's contents
 *   fds           print how many descriptors are open (beyond the one listing them)
 *   spawn         leave a background child that sleeps forever (terminate must kill it)
 *   serve:PATH    last action: serve "echo:<line>" on a unix socket at PATH, forever
 *   exit:N        exit with status N
 *   raise:N       die by signal N
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const char* connect_result(const char* ip, int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) return "error";
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return "error";
  const char* result = "connected";
  if (connect(fd, (struct sockaddr*)&a, sizeof a) != 0) {
    if (errno == ECONNREFUSED) result = "refused";
    else if (errno == ENETUNREACH || errno == EHOSTUNREACH) result = "unreachable";
    else if (errno != EINPROGRESS) result = "error";
    else {
      struct pollfd p = {fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      if (poll(&p, 1, 2000) != 1) result = "timeout";
      else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0)
        result = err == ECONNREFUSED ? "refused" : (err == ENETUNREACH || err == EHOSTUNREACH) ? "unreachable" : "error";
    }
  }
  close(fd);
  return result;
}

static void do_tcp(const char* spec) {
  char ip[64];
  const char* colon = strrchr(spec, ':');
  if (!colon || (size_t)(colon - spec) >= sizeof ip) return;
  memcpy(ip, spec, (size_t)(colon - spec));
  ip[colon - spec] = 0;
  printf("tcp %s:%s %s\n", ip, colon + 1, connect_result(ip, atoi(colon + 1)));
}

static void do_alloc(const char* mib_text) {
  size_t n = (size_t)atoi(mib_text) << 20;
  volatile char* p = malloc(n);  /* volatile: the compiler may not elide the touches */
  if (!p) {
    printf("alloc %s failed\n", mib_text);
    return;
  }
  for (size_t i = 0; i < n; i += 4096) p[i] = 1;
  printf("alloc %s ok\n", mib_text);
  free((char*)p);
}

static void serve(const char* path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  unlink(path);
  if (fd < 0 || bind(fd, (struct sockaddr*)&a, sizeof a) != 0 || listen(fd, 8) != 0) {
    printf("serve %s failed: %s\n", path, strerror(errno));
    fflush(stdout);
    exit(1);
  }
  printf("serving %s\n", path);
  fflush(stdout);
  for (;;) {
    int c = accept(fd, NULL, NULL);
    if (c < 0) continue;
    char buf[256];
    ssize_t n = read(c, buf, sizeof buf - 1);
    if (n > 0) {
      char out[300];
      buf[n] = 0;
      int len = snprintf(out, sizeof out, "echo:%s", buf);
      if (write(c, out, (size_t)len) < 0) perror("write");
    }
    close(c);
  }
}

int main(int argc, char** argv) {
  printf("probe pid=%d\n", (int)getpid());
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (strncmp(a, "tcp:", 4) == 0) do_tcp(a + 4);
    else if (strncmp(a, "absent:", 7) == 0) {
      struct stat st;
      printf("path %s %s\n", a + 7, stat(a + 7, &st) == 0 ? "present" : "absent");
    } else if (strncmp(a, "env:", 4) == 0) {
      const char* v = getenv(a + 4);
      printf("env %s=%s\n", a + 4, v ? v : "(unset)");
    } else if (strncmp(a, "alloc:", 6) == 0) do_alloc(a + 6);
    else if (strncmp(a, "cat:", 4) == 0) {
      FILE* f = fopen(a + 4, "r");
      char line[512];
      while (f && fgets(line, sizeof line, f)) fputs(line, stdout);
      if (f) fclose(f);
    } else if (strcmp(a, "fds") == 0) {
      int n = 0;
      DIR* d = opendir("/proc/self/fd");
      for (struct dirent* e; d && (e = readdir(d));) n += e->d_name[0] != '.';
      if (d) closedir(d);
      printf("fds %d\n", n - 1);
    } else if (strcmp(a, "spawn") == 0) {
      if (fork() == 0) {
        for (;;) pause();
      }
      printf("spawned\n");
    } else if (strncmp(a, "serve:", 6) == 0) serve(a + 6);
    else if (strncmp(a, "exit:", 5) == 0) {
      fflush(stdout);
      exit(atoi(a + 5));
    } else if (strncmp(a, "raise:", 6) == 0) {
      fflush(stdout);
      signal(atoi(a + 6), SIG_DFL);
      raise(atoi(a + 6));
    }
    fflush(stdout);
  }
  return 0;
}
