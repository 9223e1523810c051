// Wire constants of the NBD protocol (fixed newstyle handshake, simple and structured replies), after
// the specification in NetworkBlockDevice/nbd doc/proto.md. All integers are big-endian.
//
// Handshake (server first):
//   S: u64 NBDMAGIC, u64 IHAVEOPT, u16 handshake flags
//   C: u32 client flags
//   C: u64 IHAVEOPT, u32 option, u32 length, <length bytes>                    (repeated)
//   S: u64 OPTION_REPLY_MAGIC, u32 option, u32 reply type, u32 length, <data>  (per reply)
// Transmission:
//   C: u32 REQUEST_MAGIC, u16 command flags, u16 type, u64 cookie, u64 offset, u32 length, [payload]
//   S: u32 SIMPLE_REPLY_MAGIC, u32 error, u64 cookie, [payload]
//   S: u32 STRUCTURED_REPLY_MAGIC, u16 flags, u16 type, u64 cookie, u32 length, <payload>

export const NBDMAGIC = 0x4e42444d41474943n
export const IHAVEOPT = 0x49484156454f5054n
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n
export const REQUEST_MAGIC = 0x25609513
export const SIMPLE_REPLY_MAGIC = 0x67446698
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef

export const REQUEST_HEADER_SIZE = 28
export const OPTION_HEADER_SIZE = 16

// Handshake flags (server) and client flags.
export const FLAG_FIXED_NEWSTYLE = 1 << 0
export const FLAG_NO_ZEROES = 1 << 1
export const FLAG_C_FIXED_NEWSTYLE = 1 << 0
export const FLAG_C_NO_ZEROES = 1 << 1

// Transmission flags.
export const FLAG_HAS_FLAGS = 1 << 0
export const FLAG_READ_ONLY = 1 << 1
export const FLAG_SEND_FLUSH = 1 << 2
export const FLAG_SEND_FUA = 1 << 3
export const FLAG_SEND_TRIM = 1 << 5
export const FLAG_SEND_WRITE_ZEROES = 1 << 6
export const FLAG_SEND_DF = 1 << 7
export const FLAG_CAN_MULTI_CONN = 1 << 8
export const FLAG_SEND_CACHE = 1 << 10
export const FLAG_SEND_FAST_ZERO = 1 << 11

// Options.
export const OPT_EXPORT_NAME = 1
export const OPT_ABORT = 2
export const OPT_LIST = 3
export const OPT_STARTTLS = 5
export const OPT_INFO = 6
export const OPT_GO = 7
export const OPT_STRUCTURED_REPLY = 8
export const OPT_LIST_META_CONTEXT = 9
export const OPT_SET_META_CONTEXT = 10

// Option reply types.
export const REP_ACK = 1
export const REP_SERVER = 2
export const REP_INFO = 3
export const REP_META_CONTEXT = 4
export const REP_ERR_UNSUP = 0x80000001
export const REP_ERR_POLICY = 0x80000002
export const REP_ERR_INVALID = 0x80000003
export const REP_ERR_TLS_REQD = 0x80000005
export const REP_ERR_UNKNOWN = 0x80000006
export const REP_ERR_SHUTDOWN = 0x80000007
export const REP_ERR_TOO_BIG = 0x80000009

// Information types of NBD_OPT_INFO / NBD_OPT_GO.
export const INFO_EXPORT = 0
export const INFO_NAME = 1
export const INFO_DESCRIPTION = 2
export const INFO_BLOCK_SIZE = 3

// Commands.
export const CMD_READ = 0
export const CMD_WRITE = 1
export const CMD_DISC = 2
export const CMD_FLUSH = 3
export const CMD_TRIM = 4
export const CMD_CACHE = 5
export const CMD_WRITE_ZEROES = 6
export const CMD_BLOCK_STATUS = 7

// Command flags.
export const CMD_FLAG_FUA = 1 << 0
export const CMD_FLAG_NO_HOLE = 1 << 1
export const CMD_FLAG_DF = 1 << 2
export const CMD_FLAG_REQ_ONE = 1 << 3
export const CMD_FLAG_FAST_ZERO = 1 << 4

// Structured reply flags and types.
export const REPLY_FLAG_DONE = 1 << 0
export const REPLY_TYPE_NONE = 0
export const REPLY_TYPE_OFFSET_DATA = 1
export const REPLY_TYPE_BLOCK_STATUS = 5
export const REPLY_TYPE_ERROR = 0x8001

// base:allocation state flags.
export const STATE_HOLE = 1 << 0
export const STATE_ZERO = 1 << 1

// Error values.
export const EPERM = 1
export const EIO = 5
export const ENOMEM = 12
export const EINVAL = 22
export const ENOSPC = 28
export const EOVERFLOW = 75
export const ENOTSUP = 95
export const ESHUTDOWN = 108

/** The one metadata context this server offers. */
export const BASE_ALLOCATION = 'base:allocation'
/** Context id given to base:allocation (any value the client treats as opaque). */
export const BASE_ALLOCATION_ID = 1

/** The NBD protocol's limit on a string (export name, description, query). */
export const MAX_STRING = 4096
