#pragma once
#include "server/http/handler.h"
#include "server/http/message.h"
namespace orchard::server {
RequestHandler* dispatch(ResponseWriter* w, RequestHead req);
}
