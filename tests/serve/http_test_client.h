// A blocking HTTP/1.1 client for the server's tests (Boost.Beast), on 127.0.0.1 only.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace ph::test {

struct HttpReply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;                            // chunked bodies decoded
};

// A connection to the server on 127.0.0.1:port (keep-alive: several calls on it).
class HttpTestClient {
 public:
  explicit HttpTestClient(int port) : socket_(io_) {
    namespace net = boost::asio;
    socket_.connect({net::ip::make_address("127.0.0.1"), (unsigned short)port});
  }

  HttpReply call(const std::string& method, const std::string& target, const std::string& body = "",
                 const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    send(method, target, body, headers);
    return receive();
  }

  void send(const std::string& method, const std::string& target, const std::string& body = "",
            const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    namespace http = boost::beast::http;
    http::request<http::string_body> req(http::string_to_verb(method), target, 11);
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/json");
    for (const auto& [name, value] : headers) req.set(name, value);
    req.body() = body;
    req.prepare_payload();
    http::write(socket_, req);
  }

  HttpReply receive() {
    namespace http = boost::beast::http;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    http::read(socket_, buffer_, parser);
    HttpReply reply;
    reply.status = (int)parser.get().result_int();
    for (const auto& field : parser.get()) {
      std::string name(field.name_string());
      for (char& c : name) c = (char)std::tolower((unsigned char)c);
      reply.headers[name] = std::string(field.value());
    }
    reply.body = parser.get().body();
    return reply;
  }

  // Raw bytes as they arrive (for a test that reads part of a stream and hangs up).
  std::string read_some() {
    char data[4096];
    boost::system::error_code ec;
    const size_t n = socket_.read_some(boost::asio::buffer(data), ec);
    return std::string(data, ec ? 0 : n);
  }
  void write_raw(const std::string& bytes) {
    boost::asio::write(socket_, boost::asio::buffer(bytes));
  }
  void close() {
    boost::system::error_code ec;
    socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
};

// One call on a fresh connection.
inline HttpReply http_call(int port, const std::string& method, const std::string& target,
                           const std::string& body = "",
                           const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  HttpTestClient client(port);
  return client.call(method, target, body, headers);
}

// The payloads of a server-sent-events body: the text after "data: " of each event.
inline std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> events;
  size_t at = 0;
  while (at < body.size()) {
    const size_t end = body.find("\n\n", at);
    if (end == std::string::npos) {
      events.push_back("<unterminated: " + body.substr(at) + ">");
      break;
    }
    const std::string event = body.substr(at, end - at);
    events.push_back(event.rfind("data: ", 0) == 0 ? event.substr(6) : "<not data: " + event + ">");
    at = end + 2;
  }
  return events;
}

}  // namespace ph::test
