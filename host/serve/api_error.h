// An error a request gets back, the OpenAI way: an HTTP status and
// {"error": {"message", "type", "param", "code"}}.
#pragma once

#include <string>

#include "models/common/error.h"

namespace ph::serve {

struct ApiError : Error {
  ApiError(int status, std::string message, std::string type = "invalid_request_error",
           std::string param = "", std::string code = "")
      : Error(message), status(status), type(std::move(type)), param(std::move(param)),
        code(std::move(code)) {}
  int status;          // 400, 401, 404, 413, 429, 503, ...
  std::string type;    // "invalid_request_error", "authentication_error", ...
  std::string param;   // the request field at fault, or ""
  std::string code;    // "model_not_found", "context_length_exceeded", ... or ""
};

}  // namespace ph::serve
