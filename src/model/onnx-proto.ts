// The subset of onnx.proto (github.com/onnx/onnx, onnx/onnx.proto, proto2, IR version 7+) that
// the exporter writes: field names and numbers copied from it, encoded with protobufjs.
// Only what a dense decoder graph needs; unknown-to-us fields are simply never written.
import protobuf from 'protobufjs';

const ONNX_SUBSET_PROTO = `
syntax = "proto2";
package onnx;

message AttributeProto {
  enum AttributeType {
    UNDEFINED = 0; FLOAT = 1; INT = 2; STRING = 3; TENSOR = 4; GRAPH = 5;
    FLOATS = 6; INTS = 7; STRINGS = 8; TENSORS = 9; GRAPHS = 10;
  }
  optional string name = 1;
  optional AttributeType type = 20;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  repeated float floats = 7;
  repeated int64 ints = 8;
}

message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
  optional string doc_string = 3;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  optional string domain = 7;
  repeated AttributeProto attribute = 5;
}

message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
}

message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}

message ModelProto {
  optional int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string domain = 4;
  optional int64 model_version = 5;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated StringStringEntryProto metadata_props = 14;
}

message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  optional string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}

message TensorProto {
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  repeated float float_data = 4 [packed = true];
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional bytes raw_data = 9;
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    };
  };
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
  }
}
`;

/** TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, INT32: 6, INT64: 7, BOOL: 9 } as const;
/** AttributeProto.AttributeType values used here. */
export const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

// Plain-object shapes of the messages (protobufjs field names are camelCase).
export interface TensorMsg {
  name: string;
  dims: number[];
  dataType: number;
  rawData?: Uint8Array;
}
export interface AttributeMsg {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorMsg;
  floats?: number[];
  ints?: number[];
}
export interface NodeMsg {
  input: string[];
  output: string[];
  name?: string;
  opType: string;
  domain?: string;
  attribute?: AttributeMsg[];
}
/** A dimension is a fixed size or a symbolic name ("batch"). */
export type Dim = number | string;
export interface ValueInfoMsg {
  name: string;
  type: { tensorType: { elemType: number; shape: { dim: Array<{ dimValue?: number; dimParam?: string }> } } };
}
export interface ModelMsg {
  irVersion: number;
  opsetImport: Array<{ domain: string; version: number }>;
  producerName: string;
  producerVersion: string;
  docString?: string;
  graph: { name: string; node: NodeMsg[]; initializer: TensorMsg[]; input: ValueInfoMsg[]; output: ValueInfoMsg[] };
  metadataProps?: Array<{ key: string; value: string }>;
}

let modelType: protobuf.Type | undefined;

function getModelType(): protobuf.Type {
  if (!modelType) modelType = protobuf.parse(ONNX_SUBSET_PROTO, { keepCase: false }).root.lookupType('onnx.ModelProto');
  return modelType;
}

export function valueInfo(name: string, elemType: number, dims: Dim[]): ValueInfoMsg {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

/** Serialises a ModelProto; `verify` catches schema mistakes (wrong field types) before encoding. */
export function encodeModel(model: ModelMsg): Uint8Array {
  const type = getModelType();
  const problem = type.verify(model);
  if (problem) throw new Error(`onnx export: invalid ModelProto: ${problem}`);
  return type.encode(type.fromObject(model)).finish();
}

/** Decodes a ModelProto (tests and tools: inspect what was written). */
export function decodeModel(bytes: Uint8Array): ModelMsg {
  const type = getModelType();
  return type.toObject(type.decode(bytes), { longs: Number, bytes: Uint8Array as unknown as typeof String, defaults: false }) as ModelMsg;
}
