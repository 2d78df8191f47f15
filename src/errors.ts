// The etcd error catalogue: every error a client can see, with etcd's gRPC
// code and exact text (clients match on the text), and the one function that
// turns any thrown value into a gRPC status. HTTP statuses derive from the
// code in src/gateway.
import { status } from '@grpc/grpc-js';

export class EtcdError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = 'EtcdError';
  }
}

const def = (code: status, text: string): EtcdError => new EtcdError(code, text);

// mvcc / kv
export const ErrCompacted = def(status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted');
export const ErrFutureRev = def(status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision');
export const ErrEmptyKey = def(status.INVALID_ARGUMENT, 'etcdserver: key is not provided');
export const ErrKeyNotFound = def(status.INVALID_ARGUMENT, 'etcdserver: key not found');
export const ErrValueProvided = def(status.INVALID_ARGUMENT, 'etcdserver: value is provided');
export const ErrLeaseProvided = def(status.INVALID_ARGUMENT, 'etcdserver: lease is provided');
export const ErrTooManyOps = def(status.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request');
export const ErrDuplicateKey = def(status.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request');
export const ErrInvalidSortOption = def(status.INVALID_ARGUMENT, 'etcdserver: invalid sort option');
export const ErrRequestTooLarge = def(status.INVALID_ARGUMENT, 'etcdserver: request is too large');
export const ErrNoSpace = def(status.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded');

// lease
export const ErrLeaseNotFound = def(status.NOT_FOUND, 'etcdserver: requested lease not found');
export const ErrLeaseExist = def(status.FAILED_PRECONDITION, 'etcdserver: lease already exists');
export const ErrLeaseTTLTooLarge = def(status.OUT_OF_RANGE, 'etcdserver: too large lease TTL');

// auth
export const ErrRootUserNotExist = def(status.FAILED_PRECONDITION, 'etcdserver: root user does not exist');
export const ErrRootRoleNotExist = def(status.FAILED_PRECONDITION, 'etcdserver: root user does not have root role');
export const ErrUserAlreadyExist = def(status.FAILED_PRECONDITION, 'etcdserver: user name already exists');
export const ErrUserEmpty = def(status.INVALID_ARGUMENT, 'etcdserver: user name is empty');
export const ErrUserNotFound = def(status.FAILED_PRECONDITION, 'etcdserver: user name not found');
export const ErrRoleAlreadyExist = def(status.FAILED_PRECONDITION, 'etcdserver: role name already exists');
export const ErrRoleNotFound = def(status.FAILED_PRECONDITION, 'etcdserver: role name not found');
export const ErrRoleEmpty = def(status.INVALID_ARGUMENT, 'etcdserver: role name is empty');
export const ErrAuthFailed = def(status.INVALID_ARGUMENT, 'etcdserver: authentication failed, invalid user ID or password');
/** etcd 3.4 passes this one through raw (code Unknown): authenticating as a user added with no_password. */
export const ErrNoPasswordUser = def(status.UNKNOWN, 'auth: authentication failed, password was given for no password user');
export const ErrPermissionNotGiven = def(status.INVALID_ARGUMENT, 'etcdserver: permission not given');
export const ErrPermissionDenied = def(status.PERMISSION_DENIED, 'etcdserver: permission denied');
export const ErrRoleNotGranted = def(status.FAILED_PRECONDITION, 'etcdserver: role is not granted to the user');
export const ErrPermissionNotGranted = def(status.FAILED_PRECONDITION, 'etcdserver: permission is not granted to the role');
export const ErrAuthNotEnabled = def(status.FAILED_PRECONDITION, 'etcdserver: authentication is not enabled');
export const ErrInvalidAuthToken = def(status.UNAUTHENTICATED, 'etcdserver: invalid auth token');
export const ErrInvalidAuthMgmt = def(status.INVALID_ARGUMENT, 'etcdserver: invalid auth management');

// cluster
export const ErrMemberNotFound = def(status.NOT_FOUND, 'etcdserver: member not found');

// availability: clients retry these
export const ErrStopped = def(status.UNAVAILABLE, 'etcdserver: server stopped');
export const ErrTimeout = def(status.UNAVAILABLE, 'etcdserver: request timed out');

export function keyTooLong(max: number): EtcdError {
  return new EtcdError(status.INVALID_ARGUMENT, `etcd-adapter: key is longer than ${max} bytes, the most this storage backend holds`);
}

/** A method or option this server does not provide; the text says what is missing. */
export function unimplemented(what: string): EtcdError {
  return new EtcdError(status.UNIMPLEMENTED, what);
}

/** A request this server cannot parse (gateway JSON, malformed fields). */
export function invalidArgument(what: string): EtcdError {
  return new EtcdError(status.INVALID_ARGUMENT, what);
}

/** Why a write was refused by a database that takes no writes now (the cause of a StorageUnavailableError). */
export const READ_ONLY = 'the database is read-only (a standby, or a primary stepping down)';

/**
 * A storage fault (database down, connection lost, lock timeout). Clients
 * retry UNAVAILABLE, so a database outage never looks like a bad request.
 */
export class StorageUnavailableError extends EtcdError {
  constructor(readonly cause: unknown) {
    super(status.UNAVAILABLE, `etcdserver: storage unavailable: ${describe(cause)}`);
  }
}

/**
 * A statement or transaction that did not finish in time (a frozen or
 * overloaded database). Its outcome is unknown, so clients get etcd's answer
 * for exactly that: `etcdserver: request timed out` (UNAVAILABLE).
 */
export class StorageTimeoutError extends StorageUnavailableError {
  constructor(what: string) {
    super(new Error(`${what} timed out`));
    this.message = ErrTimeout.message;
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return (err as { code?: string }).code ?? err.message;
  // an error that crossed a thread arrives as a plain object
  if (err && typeof err === 'object') {
    const { code, message } = err as { code?: unknown; message?: unknown };
    if (code !== undefined || message !== undefined) return String(code ?? message);
  }
  return String(err);
}

const GO_CODE_NAMES = [
  'OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists', 'PermissionDenied',
  'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange', 'Unimplemented', 'Internal', 'Unavailable', 'DataLoss', 'Unauthenticated',
];

/** An error as Go's gRPC prints it ("rpc error: code = X desc = ..."): etcd puts this text in some answers. */
export function goStatusText(err: unknown): string {
  const { code, details } = toStatus(err);
  return `rpc error: code = ${GO_CODE_NAMES[code] ?? `Code(${code})`} desc = ${details}`;
}

export interface StatusLike {
  code: status;
  details: string;
}

/** The one place any thrown value becomes a gRPC status. */
export function toStatus(err: unknown): StatusLike {
  if (err instanceof EtcdError) return { code: err.code, details: err.message };
  const message = err instanceof Error ? err.message : String(err);
  return { code: status.INTERNAL, details: `etcdserver: internal error: ${message}` };
}
