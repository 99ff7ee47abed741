// LocalHandler answers; see local_handler.h. The one subtle rule: an answer
// written before the request body was read to its end must carry
// Connection: close, because the connection will close instead of reading
// (and discarding) a body of unknown size.
#include "server/http/local_handler.h"

namespace orchard::server {

void LocalHandler::answer(int status, std::string_view contentType, std::string_view body, std::string_view extra) {
  if (answered_) return;
  answered_ = true;
  if (!w_) return;
  const bool close = !req_.keepAlive || (req_.hasBody() && !requestComplete_);
  w_->write(smallResponse(status, contentType, body, extra, close, req_.method == "HEAD"));
  if (w_) w_->endResponse(true);  // a failed write closed the connection (onConnClosed) under us
}

void LocalHandler::answerError(int status, std::string_view detail, std::string_view extra) {
  answer(status, "application/json", errorBody(status, detail), extra);
}

}  // namespace orchard::server
