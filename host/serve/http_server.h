// A small HTTP/1.1 server (Boost.Beast, synchronous): one thread per connection, at most
// `max_connections` of them, keep-alive, read and write timeouts, a body size limit.
//
// Why Beast: the server owns the socket, so a handler that waits for a long completion
// can ask whether the client is still there (client_gone()) and cancel its work when it
// is not. The handler runs on the connection's thread and answers once, either whole
// (respond) or as a stream of chunks (start_stream, send_chunk, end_stream: SSE).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

namespace ph::serve {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port (port() tells which)
  int max_connections = 256;
  size_t max_body_bytes = size_t{1} << 20;  // beyond it: 413
  // A request (headers and body) must arrive within it, and each write must make
  // progress within it; an idle keep-alive connection is closed after it.
  std::chrono::milliseconds io_timeout{30000};
};

// One request and its answer, on the connection's thread.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  virtual const HttpRequest& request() const = 0;
  virtual const std::string& remote() const = 0;  // "address:port"
  // The whole answer. Returns false if the client could not be written to.
  virtual bool respond(int status, const std::string& content_type, const std::string& body,
                       const HttpHeaders& headers = {}) = 0;
  // A chunked answer: the headers now, the body in send_chunk()s, end_stream() last
  // with the body's last bytes (may be empty) and the end of the chunks.
  virtual bool start_stream(int status, const std::string& content_type) = 0;
  virtual bool send_chunk(const std::string& data) = 0;
  virtual bool end_stream(const std::string& last_data) = 0;
  // True when the client has closed its side (or the connection broke): nobody reads
  // the answer any more. Does not block.
  virtual bool client_gone() = 0;
  // The status answered and the body bytes sent so far (for the log line).
  virtual int status() const = 0;
  virtual size_t bytes_sent() const = 0;
};

using HttpHandler = std::function<void(HttpExchange&)>;
// Told of every request the server answers itself, without the handler (413, a malformed
// request, 503 when the connections are all taken): the client's address, the status,
// why. For the request log.
using HttpRefusalLog =
    std::function<void(const std::string& remote, int status, const std::string& why)>;

class HttpServer {
 public:
  // Binds and listens (throws ph::Error naming the address when it cannot), then
  // accepts on a thread of its own.
  HttpServer(HttpServerOptions options, HttpHandler handler, HttpRefusalLog refusal_log = {});
  // stop(), then waits for the connections' threads.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;
  // Stops accepting connections; idle keep-alive connections close, requests being
  // handled finish (their handler decides how long that takes).
  void stop();
  // Waits up to `timeout` for every connection to end; true if they all did.
  bool wait_connections(std::chrono::milliseconds timeout);
  int open_connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ph::serve
