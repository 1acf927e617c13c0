// `prompthost serve` as a process: it prints where it listens, serves, and on SIGTERM or
// SIGINT stops accepting, lets the running requests finish (or ends them after
// --drain-seconds) and exits 0.
#include <catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/http_test_client.h"
#include "test_support.h"

#ifndef PROMPTHOST_EXE
#error "PROMPTHOST_EXE must name the prompthost executable (tests/CMakeLists.txt)"
#endif

namespace {

using json = nlohmann::json;

// The server as a child process; its standard error read through a pipe.
class ServeProcess {
 public:
  explicit ServeProcess(std::vector<std::string> args) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    args.insert(args.begin(), {PROMPTHOST_EXE, "serve", "--port", "0"});
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      dup2(fds[1], 2);
      close(fds[0]);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    err_ = fds[0];
    fcntl(err_, F_SETFL, O_NONBLOCK);
  }
  ~ServeProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(err_);
  }

  // Reads standard error until `pattern` matches it (or 20 s pass).
  std::smatch wait_for(const std::string& pattern) {
    const std::regex re(pattern);
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::smatch m;
    while (!std::regex_search(stderr_, m, re) && std::chrono::steady_clock::now() < end) {
      pollfd p{err_, POLLIN, 0};
      poll(&p, 1, 100);
      char buffer[4096];
      const ssize_t n = read(err_, buffer, sizeof buffer);
      if (n > 0) stderr_.append(buffer, (size_t)n);
    }
    INFO(stderr_);
    REQUIRE(std::regex_search(stderr_, m, re));
    return m;
  }
  int port() { return std::stoi(wait_for(R"(listening on http://127\.0\.0\.1:(\d+))")[1]); }
  void signal(int number) { kill(pid_, number); }
  // The exit code (-1 if killed by a signal), within 20 s.
  int wait_exit() {
    for (int i = 0; i < 200; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        read_rest();
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL("prompthost serve did not exit within 20 s");
    return -2;
  }
  const std::string& stderr_text() const { return stderr_; }

 private:
  void read_rest() {  // the process has ended: until EOF
    char buffer[4096];
    for (ssize_t n; (n = read(err_, buffer, sizeof buffer)) > 0;) stderr_.append(buffer, (size_t)n);
  }

 public:
 private:
  pid_t pid_ = -1;
  int err_ = -1;
  bool exited_ = false;
  std::string stderr_;
};

// Sends a streamed completion and returns once its first event has arrived.
std::string start_stream(ph::test::HttpTestClient& client, int max_tokens) {
  client.send("POST", "/v1/completions",
              json({{"model", "demo"},
                    {"prompt", "The computer"},
                    {"max_tokens", max_tokens},
                    {"temperature", 0},
                    {"stream", true}})
                  .dump());
  std::string received;
  for (int i = 0; i < 200 && received.find("data: ") == std::string::npos; ++i)
    received += client.read_some();
  REQUIRE(received.find("data: ") != std::string::npos);
  return received;
}

std::string read_to_end(ph::test::HttpTestClient& client, std::string received) {
  while (received.find("data: [DONE]") == std::string::npos) {
    const std::string more = client.read_some();
    if (more.empty()) break;
    received += more;
  }
  return received;
}

}  // namespace

// With --max-sequences 1 the requests run one after the other: when the signal comes,
// the stream has started and `queued` more wait (seconds of work on the demo model).
struct Traffic {
  ph::test::HttpTestClient stream;
  std::string first;
  std::vector<std::future<ph::test::HttpReply>> queued;
  Traffic(int port, int count) : stream(port) {
    first = start_stream(stream, 250);
    const std::string body =
        json({{"model", "demo"}, {"prompt", "The"}, {"max_tokens", 250}, {"temperature", 0}})
            .dump();
    for (int i = 0; i < count; ++i)
      queued.push_back(std::async(std::launch::async, [port, body] {
        return ph::test::http_call(port, "POST", "/v1/completions", body);
      }));
    const std::string waiting = "prompthost_queue_length " + std::to_string(count) + "\n";
    for (int i = 0; i < 500; ++i) {
      if (ph::test::http_call(port, "GET", "/metrics").body.find(waiting) != std::string::npos)
        return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL("the requests did not queue");
  }
};

TEST_CASE("SIGTERM: no new connections, running and queued requests finish, exit 0",
          "[serve_command]") {
  const std::string log = ph::test::temp_dir("serve_command") + "/requests.log";
  ServeProcess server({"--log-file", log, "--drain-seconds", "60", "--max-sequences", "1"});
  const int port = server.port();
  CHECK(ph::test::http_call(port, "GET", "/health").status == 200);
  Traffic traffic(port, 6);
  server.signal(SIGTERM);
  server.wait_for("SIGTERM: no new requests");
  const std::string all = read_to_end(traffic.stream, traffic.first);
  CHECK(all.find("\"finish_reason\":\"length\"") != std::string::npos);
  CHECK(all.find("data: [DONE]") != std::string::npos);
  for (auto& f : traffic.queued) {
    const ph::test::HttpReply r = f.get();
    REQUIRE(r.status == 200);
    CHECK(json::parse(r.body)["choices"][0]["finish_reason"] == "length");
  }
  CHECK(server.wait_exit() == 0);
  CHECK(server.stderr_text().find("stopped") != std::string::npos);
  CHECK_THROWS(ph::test::HttpTestClient(port));  // nobody listens any more
  std::ifstream in(log);
  const std::string lines((std::istreambuf_iterator<char>(in)), {});
  CHECK(lines.find("\"GET /health\" 200") != std::string::npos);
  CHECK(lines.find("\"POST /v1/completions\" 200") != std::string::npos);
}

TEST_CASE("SIGINT with --drain-seconds 0 ends the requests (finish_reason shutdown), exit 0",
          "[serve_command]") {
  ServeProcess server({"--drain-seconds", "0", "--max-sequences", "1"});
  Traffic traffic(server.port(), 6);
  server.signal(SIGINT);
  // The stream may have finished before the signal; the queued ones had not started.
  const std::string all = read_to_end(traffic.stream, traffic.first);
  CHECK(all.find("data: [DONE]") != std::string::npos);
  int shutdown = 0;
  for (auto& f : traffic.queued) {
    const ph::test::HttpReply r = f.get();
    REQUIRE(r.status == 200);
    const std::string reason = json::parse(r.body)["choices"][0]["finish_reason"];
    CHECK((reason == "shutdown" || reason == "length"));
    shutdown += reason == "shutdown";
  }
  CHECK(shutdown >= 5);
  CHECK(server.wait_exit() == 0);
}

TEST_CASE("serve refuses what it cannot serve, naming it", "[serve_command]") {
  {
    ServeProcess server({"--adapter", "x=/no/such/adapter"});
    CHECK(server.wait_exit() == 1);
    CHECK(server.stderr_text().find("/no/such/adapter") != std::string::npos);
  }
  {
    ServeProcess server({"--host", "not-an-address"});
    CHECK(server.wait_exit() == 1);
    CHECK(server.stderr_text().find("not-an-address") != std::string::npos);
  }
}
