#include "server/routes.h"
#include "server/proxy/transaction.h"
namespace orchard::server {
RequestHandler* dispatch(ResponseWriter* w, RequestHead req) { return new Transaction(w, std::move(req)); }
}
