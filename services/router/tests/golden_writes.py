"""Answers of one Milvus 2.3.5 and one milvus-lite 3.2.2 to raw bad writes (probed 2026-12-02).

Keys are the case names of test_validation.py; an answer is "OK", or (code, error_code, reason);
delete answers on success carry the keys milvus-lite reported and the delete count.
"""

from typing import Any

WRITES: dict[str, dict[str, Any]] = {
    "float field with vector label": {
        "lite": (6, 6, "field 'f' value [1.0] does not match dtype DataType.FLOAT"),
        "milvus": "OK",  # then its querynode died
    },
    "zero rows + dup": {
        "lite": "OK",
        "milvus": (
            1100,
            5,
            "num_rows should be greater than 0: invalid parameter[expected=invalid num_rows][actual=0]",
        ),
    },
    "+Inf": {"lite": "OK", "milvus": (65535, 1, "value '+Inf' is not a number or infinity")},
    "-Inf": {"lite": "OK", "milvus": (65535, 1, "value '-Inf' is not a number or infinity")},
    "M NaN + num_rows mismatch other col": {
        "lite": (6, 6, "FieldData 'f' has 1 rows, expected 2"),
        "milvus": (65535, 1, "value 'NaN' is not a number or infinity"),
    },
    "M NaN then long varchar": {
        "lite": (6, 6, "VARCHAR field 'name' value length 10 exceeds max_length=8"),
        "milvus": (65535, 1, "value 'NaN' is not a number or infinity"),
    },
    "M ai64 over cap + ai32 wrong (col order)": {
        "lite": (6, 6, "ARRAY field 'ai64' has 4 elements, exceeds max_capacity=3"),
        "milvus": (
            1100,
            5,
            "the length (4) of 0th array exceeds max capacity "
            "(3): invalid parameter[expected=valid length "
            "array][actual=array length exceeds max capacity]",
        ),
    },
    "M ai64 wrong + over cap": {
        "lite": (6, 6, "ARRAY field 'ai64' has 4 elements, exceeds max_capacity=3"),
        "milvus": (
            1100,
            5,
            "insert data does not match: invalid parameter[expected=int64 "
            "array][actual=*schemapb.ScalarField_FloatData array]",
        ),
    },
    "M arr cap + long varchar (order)": {
        "lite": (6, 6, "VARCHAR field 'name' value length 10 exceeds max_length=8"),
        "milvus": (
            1100,
            5,
            "the length (4) of 0th array exceeds max capacity (3): "
            "invalid parameter[expected=valid length "
            "array][actual=array length exceeds max capacity]",
        ),
    },
    "M bad json + long varchar": {
        "lite": (6, 6, "VARCHAR field 'name' value length 10 exceeds max_length=8"),
        "milvus": (
            1100,
            5,
            "the length (10) of 0th string exceeds max length (8): invalid "
            "parameter[expected=valid length string][actual=string length "
            "exceeds max length]",
        ),
    },
    "M bad part name + NaN": {
        "lite": (200, 200, "a-b"),
        "milvus": (
            65535,
            1,
            "Invalid partition name: a-b. Partition name can only contain numbers, letters and underscores.",
        ),
    },
    "M bad part name + dup": {
        "lite": (200, 200, "a-b"),
        "milvus": (1100, 5, "duplicated field f found: invalid parameter"),
    },
    "M dim + long varchar": {
        "lite": (6, 6, "vector field 'vec' expected dim 4, got 8"),
        "milvus": (
            1100,
            5,
            "the length (10) of 0th string exceeds max length (8): invalid "
            "parameter[expected=valid length string][actual=string length exceeds "
            "max length]",
        ),
    },
    "M dup + missing": {
        "lite": (6, 6, "field 'name' missing and not nullable / no default"),
        "milvus": (1100, 5, "duplicated field f found: invalid parameter"),
    },
    "M dyn bad + dup": {
        "lite": "OK",
        "milvus": (65535, 1, "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    },
    "M dyn bad + missing": {
        "lite": (6, 6, "vector field 'vec' missing or None"),
        "milvus": (65535, 1, "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    },
    "M dyn disabled + unknown field": {
        "lite": (6, 6, "record has fields ['x', 'zzz'] not in schema (enable_dynamic_field is False)"),
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=6][actual=8]"),
    },
    "M long varchar + arr cap": {
        "lite": (6, 6, "VARCHAR field 'name' value length 10 exceeds max_length=8"),
        "milvus": (
            1100,
            5,
            "the length (10) of 0th string exceeds max length (8): invalid "
            "parameter[expected=valid length string][actual=string length "
            "exceeds max length]",
        ),
    },
    "M long varchar + num_rows short f": {
        "lite": (6, 6, "FieldData 'f' has 1 rows, expected 2"),
        "milvus": (
            1100,
            5,
            "the length (10) of 1th string exceeds max length (8): "
            "invalid parameter[expected=valid length "
            "string][actual=string length exceeds max length]",
        ),
    },
    "M long varchar then NaN (order)": {
        "lite": (6, 6, "VARCHAR field 'name' value length 10 exceeds max_length=8"),
        "milvus": (
            1100,
            5,
            "the length (10) of 0th string exceeds max length (8): "
            "invalid parameter[expected=valid length "
            "string][actual=string length exceeds max length]",
        ),
    },
    "M missing f + NaN": {
        "lite": (6, 6, "field 'f' missing and not nullable / no default"),
        "milvus": (65535, 1, "value 'NaN' is not a number or infinity"),
    },
    "M missing f + long name (missing after)": {
        "lite": (6, 6, "VARCHAR field 'name' value length 10 exceeds max_length=8"),
        "milvus": (
            1100,
            5,
            "the length (10) of 0th string exceeds max length "
            "(8): invalid parameter[expected=valid length "
            "string][actual=string length exceeds max length]",
        ),
    },
    "M missing f + num_rows short name": {
        "lite": (6, 6, "FieldData 'name' has 1 rows, expected 2"),
        "milvus": (
            1100,
            5,
            "the num_rows (1) of field (name) is not equal to passed "
            "num_rows (2): invalid parameter[expected=2][actual=2]",
        ),
    },
    "M missing js + arr cap": {
        "lite": (6, 6, "ARRAY field 'arr' has 4 elements, exceeds max_capacity=3"),
        "milvus": (
            1100,
            5,
            "the length (4) of 0th array exceeds max capacity (3): invalid "
            "parameter[expected=valid length array][actual=array length exceeds "
            "max capacity]",
        ),
    },
    "M missing name + NaN": {
        "lite": (6, 6, "field 'name' missing and not nullable / no default"),
        "milvus": (65535, 1, "value 'NaN' is not a number or infinity"),
    },
    "M missing name + missing js": {
        "lite": (6, 6, "field 'name' missing and not nullable / no default"),
        "milvus": (
            1100,
            5,
            "varchar field 'name' is illegal, array type mismatch: invalid "
            "parameter[expected=need string array][actual=got nil]",
        ),
    },
    "M missing pk + unknown field": {
        "lite": (6, 6, "primary key 'id' missing or None"),
        "milvus": (65535, 1, "can't find data for primary field: id"),
    },
    "M missing vec + unknown field": {
        "lite": (6, 6, "vector field 'vec' missing or None"),
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=6][actual=7]"),
    },
    "M num_rows mismatch + NaN": {
        "lite": (6, 6, "FieldData 'id' has 2 rows, expected 3"),
        "milvus": (65535, 1, "value 'NaN' is not a number or infinity"),
    },
    "M pk auto + NaN": {
        "lite": "OK",
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=1][actual=2]"),
    },
    "M pkey part + NaN": {
        "lite": "OK",
        "milvus": (65535, 1, "not support manually specifying the partition names if partition key mode is used"),
    },
    "M pkey part + dup": {"lite": "OK", "milvus": (1100, 5, "duplicated field id found: invalid parameter")},
    "M pkey part + missing key": {
        "lite": (6, 6, "field 'key' missing and not nullable / no default"),
        "milvus": (65535, 1, "not support manually specifying the partition names if partition key mode is used"),
    },
    "M pkey part + zero rows": {
        "lite": "OK",
        "milvus": (
            1100,
            5,
            "num_rows should be greater than 0: invalid parameter[expected=invalid num_rows][actual=0]",
        ),
    },
    "M unknown field + NaN": {
        "lite": (6, 6, "record has fields ['zzz'] not in schema (enable_dynamic_field is False)"),
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=6][actual=7]"),
    },
    "M unknown field + missing": {
        "lite": (6, 6, "field 'f' missing and not nullable / no default"),
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=6][actual=7]"),
    },
    "M unknown partition + NaN": {
        "lite": (200, 200, "nopart"),
        "milvus": (65535, 1, "value 'NaN' is not a number or infinity"),
    },
    "M unknown partition + missing f": {
        "lite": (6, 6, "field 'f' missing and not nullable / no default"),
        "milvus": (65535, 1, "%!s(<nil>) is not supported now"),
    },
    "M unknown partition + zero rows": {
        "lite": "OK",
        "milvus": (
            1100,
            5,
            "num_rows should be greater than 0: invalid parameter[expected=invalid num_rows][actual=0]",
        ),
    },
    "M upsert missing pk + NaN": {
        "lite": (6, 6, "primary key 'id' missing or None"),
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=6][actual=5]"),
    },
    "M upsert pkey part + dup": {
        "lite": "OK",
        "milvus": (65535, 1, "not support manually specifying the partition names if partition key mode is used"),
    },
    "M upsert pkey part + zero rows": {
        "lite": "OK",
        "milvus": (65535, 1, "not support manually specifying the partition names if partition key mode is used"),
    },
    "M wrong type + NaN": {
        "lite": (6, 6, "field 'name' value 1 does not match dtype DataType.VARCHAR"),
        "milvus": (65535, 1, "value 'NaN' is not a number or infinity"),
    },
    "M zero rows + dyn bad": {
        "lite": "OK",
        "milvus": (65535, 1, "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    },
    "M zero rows + missing": {
        "lite": "OK",
        "milvus": (
            1100,
            5,
            "num_rows should be greater than 0: invalid parameter[expected=invalid num_rows][actual=0]",
        ),
    },
    "NaN": {"lite": "OK", "milvus": (65535, 1, "value 'NaN' is not a number or infinity")},
    "NaN in float scalar": {"lite": "OK", "milvus": "OK"},
    "NaN row 2": {"lite": "OK", "milvus": (65535, 1, "value 'NaN' is not a number or infinity")},
    "ab int rows": {
        "lite": (1, 0, "Could not convert 1 with type int: tried to convert to boolean"),
        "milvus": (
            1100,
            5,
            "insert data does not match: invalid parameter[expected=bool "
            "array][actual=*schemapb.ScalarField_IntData array]",
        ),
    },
    "ad float rows": {
        "lite": "OK",
        "milvus": (
            1100,
            5,
            "insert data does not match: invalid parameter[expected=double "
            "array][actual=*schemapb.ScalarField_FloatData array]",
        ),
    },
    "af double rows": {
        "lite": "OK",
        "milvus": (
            1100,
            5,
            "insert data does not match: invalid parameter[expected=float "
            "array][actual=*schemapb.ScalarField_DoubleData array]",
        ),
    },
    "ai32 long rows": {
        "lite": "OK",
        "milvus": (
            1100,
            5,
            "insert data does not match: invalid parameter[expected=int "
            "array][actual=*schemapb.ScalarField_LongData array]",
        ),
    },
    "ai64 empty row list (0 rows)": {
        "lite": (6, 6, "FieldData 'ai64' has 0 rows, expected 1"),
        "milvus": (
            1100,
            5,
            "the num_rows (0) of field (ai64) is not equal to passed "
            "num_rows (1): invalid parameter[expected=1][actual=1]",
        ),
    },
    "ai64 label varchar, empty str rows": {
        "lite": "OK",
        "milvus": (1100, 5, "Array is not of string type: invalid parameter[expected=VarChar][actual=Array]"),
    },
    "ai8 label int64 with int rows 300": {
        "lite": (1, 0, "Value 300 too large to fit in C integer type"),
        "milvus": (
            1100,
            5,
            "the 0th element (300) out of range: [-128, 127]: invalid "
            "parameter[expected=integer doesn't overflow][actual=out "
            "of range]",
        ),
    },
    "ai8 overflow": {
        "lite": (1, 0, "Value 300 too large to fit in C integer type"),
        "milvus": (
            1100,
            5,
            "the 0th element (300) out of range: [-128, 127]: invalid "
            "parameter[expected=integer doesn't overflow][actual=out of range]",
        ),
    },
    "arr ok": {"lite": "OK", "milvus": "OK"},
    "array elem label long, float slot": {
        "lite": "OK",
        "milvus": (
            1100,
            5,
            "insert data does not match: invalid "
            "parameter[expected=int64 "
            "array][actual=*schemapb.ScalarField_FloatData array]",
        ),
    },
    "array elem label str, long slot": {
        "lite": "OK",
        "milvus": (1100, 5, "Array is not of string type: invalid parameter[expected=VarChar][actual=Array]"),
    },
    "array over capacity": {
        "lite": (6, 6, "ARRAY field 'arr' has 4 elements, exceeds max_capacity=3"),
        "milvus": (
            1100,
            5,
            "the length (4) of 0th array exceeds max capacity (3): invalid "
            "parameter[expected=valid length array][actual=array length exceeds max "
            "capacity]",
        ),
    },
    "array over capacity row1": {
        "lite": (6, 6, "ARRAY field 'arr' has 4 elements, exceeds max_capacity=3"),
        "milvus": (
            1100,
            5,
            "the length (4) of 1th array exceeds max capacity (3): invalid "
            "parameter[expected=valid length array][actual=array length exceeds "
            "max capacity]",
        ),
    },
    "array wrong elem (str)": {
        "lite": (1, 0, "Could not convert 'x' with type str: tried to convert to int64"),
        "milvus": (1100, 5, "Array is not of string type: invalid parameter[expected=VarChar][actual=Array]"),
    },
    "array wrong elem over cap": {
        "lite": (6, 6, "ARRAY field 'arr' has 4 elements, exceeds max_capacity=3"),
        "milvus": (1100, 5, "Array is not of string type: invalid parameter[expected=VarChar][actual=Array]"),
    },
    "as elem too long row1 idx1": {
        "lite": (6, 6, "FieldData 'id' has 2 rows, expected 1"),
        "milvus": (
            1100,
            5,
            "the num_rows (2) of field (id) is not equal to passed num_rows "
            "(1): invalid parameter[expected=1][actual=1]",
        ),
    },
    "as label varchar, long slot rows": {
        "lite": (1, 0, "Expected bytes, got a 'int' object"),
        "milvus": (
            1100,
            5,
            "insert data does not match: invalid "
            "parameter[expected=string "
            "array][actual=*schemapb.ScalarField_LongData array]",
        ),
    },
    "as long rows": {
        "lite": (1, 0, "Expected bytes, got a 'int' object"),
        "milvus": (
            1100,
            5,
            "insert data does not match: invalid parameter[expected=string "
            "array][actual=*schemapb.ScalarField_LongData array]",
        ),
    },
    "bad json": {
        "lite": "OK",
        "milvus": (1001, 1, "IO failed: invalid character 'b' looking for beginning of object key string"),
    },
    "bool int slot": {"lite": (6, 6, "field 'b' value 1 does not match dtype DataType.BOOL"), "milvus": "OK"},
    "def given all": {"lite": "OK", "milvus": "OK"},
    "def missing n,s,x": {"lite": "OK"},
    "def n null (non-nullable, default)": {"lite": "OK", "milvus": "OK"},
    "def n,s given empty slots": {"lite": (6, 6, "FieldData 'n' has 0 rows, expected 1"), "milvus": "OK"},
    "def s too long": {
        "lite": (6, 6, "VARCHAR field 's' value length 10 exceeds max_length=8"),
        "milvus": (
            1100,
            5,
            "the length (10) of 0th string exceeds max length (8): invalid "
            "parameter[expected=valid length string][actual=string length exceeds max "
            "length]",
        ),
    },
    "def x full form null": {"lite": "OK", "milvus": "OK"},
    "def x null compact": {
        "lite": "OK",
        "milvus": (
            1100,
            5,
            "the num_rows (0) of field (x) is not equal to passed num_rows (1): "
            "invalid parameter[expected=1][actual=1]",
        ),
    },
    "dup field": {"lite": "OK", "milvus": (1100, 5, "duplicated field f found: invalid parameter")},
    "dup pk field": {"lite": "OK", "milvus": (1100, 5, "duplicated field id found: invalid parameter")},
    "dyn $meta key": {"lite": "OK", "milvus": (65535, 1, "cannot set json key to: $meta")},
    "dyn array": {
        "lite": "OK",
        "milvus": (65535, 1, "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    },
    "dyn bad json": {
        "lite": "OK",
        "milvus": (65535, 1, "invalid character 'b' looking for beginning of object key string"),
    },
    "dyn flag other name": {"lite": "OK", "milvus": "OK"},
    "dyn null json": {"lite": "OK", "milvus": "OK"},
    "dyn plain $meta name no flag": {
        "lite": "OK",
        "milvus": (1100, 5, "duplicated field $meta found: invalid parameter"),
    },
    "dyn rows mismatch": {
        "lite": (6, 6, "FieldData '$meta' has 1 rows, expected 2"),
        "milvus": (
            1100,
            5,
            "the num_rows (1) of field ($meta) is not equal to passed num_rows (2): "
            "invalid parameter[expected=2][actual=2]",
        ),
    },
    "dyn static key": {"lite": (6, 6, "field 'id' value 'x' does not match dtype DataType.INT64"), "milvus": "OK"},
    "dyn too long": {
        "lite": "OK",
        "milvus": (
            1100,
            5,
            "the length (70008) of dynamic field exceeds max length (65536): invalid "
            "parameter[expected=valid length dynamic field][actual=length exceeds max "
            "length]",
        ),
    },
    "dyn two flagged cols": {
        "lite": "OK",
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=3][actual=4]"),
    },
    "dyn two rows one bad": {
        "lite": "OK",
        "milvus": (65535, 1, "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    },
    "dynamic $meta name no flag, disabled": {
        "lite": (6, 6, "record has fields ['x'] not in schema (enable_dynamic_field is False)"),
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=6][actual=7]"),
    },
    "dynamic empty when disabled": {
        "lite": "OK",
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=6][actual=7]"),
    },
    "dynamic flag other name, disabled": {
        "lite": (6, 6, "record has fields ['x'] not in schema (enable_dynamic_field is False)"),
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=6][actual=7]"),
    },
    "dynamic when disabled": {
        "lite": (6, 6, "record has fields ['x'] not in schema (enable_dynamic_field is False)"),
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=6][actual=7]"),
    },
    "i16 overflow": {
        "lite": (6, 6, "field 'i16' value 70000 does not match dtype DataType.INT16"),
        "milvus": (
            1100,
            5,
            "the 0th element (70000) out of range: [-32768, 32767]: invalid "
            "parameter[expected=integer doesn't overflow][actual=out of range]",
        ),
    },
    "i32 long slot": {"lite": "OK", "milvus": "OK"},
    "i8 overflow": {
        "lite": (6, 6, "field 'i8' value 300 does not match dtype DataType.INT8"),
        "milvus": (
            1100,
            5,
            "the 0th element (300) out of range: [-128, 127]: invalid "
            "parameter[expected=integer doesn't overflow][actual=out of range]",
        ),
    },
    "insert unknown collection": {
        "lite": (100, 4, "collection 'nope' does not exist"),
        "milvus": (100, 4, "collection not found[database=default][collection=nope]"),
    },
    "json array": {
        "lite": "OK",
        "milvus": (1001, 1, "IO failed: json: cannot unmarshal array into Go value of type map[string]interface {}"),
    },
    "json bad unicode escape": {
        "lite": (1, 0, "'utf-8' codec can't encode character '\\ud800' in position 7: surrogates not allowed"),
        "milvus": "OK",
    },
    "json big number": {
        "lite": "OK",
        "milvus": (1001, 1, "IO failed: json: cannot unmarshal number 1e400 into Go value of type float64"),
    },
    "json control char in string": {
        "lite": "OK",
        "milvus": (1001, 1, "IO failed: invalid character '\\x01' in string literal"),
    },
    "json deep": {
        "lite": (1, 0, "maximum recursion depth exceeded while decoding a JSON object from a unicode string"),
        "milvus": (1001, 1, "IO failed: invalid character '{' exceeded max depth"),
    },
    "json dup keys": {"lite": "OK", "milvus": "OK"},
    "json empty": {"lite": "OK", "milvus": (1001, 1, "IO failed: unexpected end of JSON input")},
    "json invalid utf8": {
        "lite": (1, 0, "'utf-8' codec can't decode byte 0xff in position 6: invalid start byte"),
        "milvus": "OK",
    },
    "json leading ws": {"lite": "OK", "milvus": "OK"},
    "json nan": {
        "lite": (1, 0, "Expected bytes, got a 'float' object"),
        "milvus": (1001, 1, "IO failed: invalid character 'N' looking for beginning of value"),
    },
    "json null": {"lite": (6, 6, "field 'js' is None but not nullable"), "milvus": "OK"},
    "json scalar": {
        "lite": (1, 0, "Expected bytes, got a 'int' object"),
        "milvus": (1001, 1, "IO failed: json: cannot unmarshal number into Go value of type map[string]interface {}"),
    },
    "json string": {
        "lite": "OK",
        "milvus": (1001, 1, "IO failed: json: cannot unmarshal string into Go value of type map[string]interface {}"),
    },
    "json too long": {
        "lite": "OK",
        "milvus": (
            1100,
            5,
            "the length (70008) of json field (js) exceeds max length (65536): invalid "
            "parameter[expected=valid length json string][actual=length exceeds max "
            "length]",
        ),
    },
    "json trailing": {"lite": "OK", "milvus": (1001, 1, "IO failed: invalid character 'x' after top-level value")},
    "main f null (non-nullable)": {
        "lite": (6, 6, "field 'f' is None but not nullable"),
        "milvus": (
            1100,
            5,
            "the num_rows (0) of field (f) is not equal to passed num_rows "
            "(1): invalid parameter[expected=1][actual=1]",
        ),
    },
    "missing arr": {
        "lite": (6, 6, "ARRAY field 'arr' missing and not nullable / no default"),
        "milvus": (
            1100,
            5,
            "array field 'arr' is illegal, array type mismatch: invalid "
            "parameter[expected=need Int64 array][actual=got nil]",
        ),
    },
    "missing f": {
        "lite": (6, 6, "field 'f' missing and not nullable / no default"),
        "milvus": (65535, 1, "%!s(<nil>) is not supported now"),
    },
    "missing pk": {
        "lite": (6, 6, "primary key 'id' missing or None"),
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=6][actual=5]"),
    },
    "missing vec": {
        "lite": (6, 6, "vector field 'vec' missing or None"),
        "milvus": (
            1100,
            5,
            "float vector field 'vec' is illegal, array type mismatch: invalid "
            "parameter[expected=need float vector][actual=got nil]",
        ),
    },
    "no fields n=1": {
        "lite": (6, 6, "primary key 'id' missing or None"),
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=6][actual=5]"),
    },
    "num_rows 0 with data": {
        "lite": "OK",
        "milvus": (
            1100,
            5,
            "num_rows should be greater than 0: invalid parameter[expected=invalid num_rows][actual=0]",
        ),
    },
    "num_rows 1 for 2": {
        "lite": (6, 6, "FieldData 'id' has 2 rows, expected 1"),
        "milvus": (
            1100,
            5,
            "the num_rows (2) of field (id) is not equal to passed num_rows (1): "
            "invalid parameter[expected=1][actual=1]",
        ),
    },
    "num_rows 3 for 2": {
        "lite": (6, 6, "FieldData 'id' has 2 rows, expected 3"),
        "milvus": (
            1100,
            5,
            "the num_rows (2) of field (id) is not equal to passed num_rows (3): "
            "invalid parameter[expected=3][actual=3]",
        ),
    },
    "ok insert": {"lite": "OK", "milvus": "OK"},
    "pk on auto_id": {
        "lite": "OK",
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=1][actual=2]"),
    },
    "pkey missing key": {
        "lite": (6, 6, "field 'key' missing and not nullable / no default"),
        "milvus": (
            1100,
            5,
            "varchar field 'key' is illegal, array type mismatch: invalid "
            "parameter[expected=need string array][actual=got nil]",
        ),
    },
    "pkey partition": {
        "lite": "OK",
        "milvus": (65535, 1, "not support manually specifying the partition names if partition key mode is used"),
    },
    "pkey partition upsert": {
        "lite": "OK",
        "milvus": (65535, 1, "not support manually specifying the partition names if partition key mode is used"),
    },
    "pkey unknown partition": {
        "lite": "OK",
        "milvus": (65535, 1, "not support manually specifying the partition names if partition key mode is used"),
    },
    "type label lies: Int64 label, float slot": {
        "lite": (6, 6, "FieldData 'f' has 0 rows, expected 1"),
        "milvus": "OK",
    },
    "types ok": {"lite": "OK", "milvus": "OK"},
    "unknown field": {
        "lite": (6, 6, "record has fields ['zzz'] not in schema (enable_dynamic_field is False)"),
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=6][actual=7]"),
    },
    "unknown field dyn": {
        "lite": "OK",
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=3][actual=4]"),
    },
    "unknown field dyn + meta": {
        "lite": "OK",
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=3][actual=4]"),
    },
    "unknown partition": {"lite": (200, 200, "nopart"), "milvus": (200, 15, "partition not found[partition=nopart]")},
    "unknown partition upsert": {
        "lite": (200, 200, "nopart"),
        "milvus": (200, 15, "partition not found[partition=nopart]"),
    },
    "upsert NaN": {"lite": "OK", "milvus": (65535, 1, "value 'NaN' is not a number or infinity")},
    "upsert missing f": {"lite": "OK", "milvus": (65535, 1, "%!s(<nil>) is not supported now")},
    "upsert missing pk": {
        "lite": (6, 6, "primary key 'id' missing or None"),
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=6][actual=5]"),
    },
    "upsert on auto_id no pk": {
        "lite": "OK",
        "milvus": (1100, 5, "upsert can not assign primary field data when auto id enabled id: invalid parameter"),
    },
    "upsert on auto_id with pk": {
        "lite": "OK",
        "milvus": (1100, 5, "the number of fields is less than needed: invalid parameter[expected=1][actual=2]"),
    },
    "upsert unknown collection": {
        "lite": (100, 4, "collection 'nope' does not exist"),
        "milvus": (100, 4, "collection not found[database=default][collection=nope]"),
    },
    "varchar 4 e-acute (8 bytes)": {"lite": "OK", "milvus": "OK"},
    "varchar 5 e-acute (10 bytes)": {
        "lite": "OK",
        "milvus": (
            1100,
            5,
            "the length (10) of 0th string exceeds max length (8): invalid "
            "parameter[expected=valid length string][actual=string length "
            "exceeds max length]",
        ),
    },
    "varchar array elem too long": {
        "lite": "OK",
        "milvus": (
            1100,
            5,
            "the length (5) of 0th string exceeds max length (4): invalid "
            "parameter[expected=valid length string][actual=string length "
            "exceeds max length]",
        ),
    },
    "varchar too long": {
        "lite": (6, 6, "VARCHAR field 'name' value length 10 exceeds max_length=8"),
        "milvus": (
            1100,
            5,
            "the length (10) of 1th string exceeds max length (8): invalid "
            "parameter[expected=valid length string][actual=string length exceeds max "
            "length]",
        ),
    },
    "vec as binary": {
        "lite": (
            6,
            6,
            "FieldData 'vec' uses vector type BinaryVector which MilvusLite does not support "
            "(supported: FloatVector, SparseFloatVector)",
        ),
        "milvus": (
            1100,
            5,
            "float vector field 'vec' is illegal, array type mismatch: invalid "
            "parameter[expected=need float vector][actual=got nil]",
        ),
    },
    "vpk empty": {"lite": "OK", "milvus": "OK"},
    "vpk int": {
        "lite": (6, 6, "field 'pk' value 1 does not match dtype DataType.VARCHAR"),
        "milvus": (
            1100,
            5,
            "varchar field 'pk' is illegal, array type mismatch: invalid parameter[expected=need "
            "string array][actual=got nil]",
        ),
    },
    "vpk too long": {
        "lite": (6, 6, "VARCHAR field 'pk' value length 40 exceeds max_length=32"),
        "milvus": (
            1100,
            5,
            "the length (40) of 0th string exceeds max length (32): invalid "
            "parameter[expected=valid length string][actual=string length exceeds max "
            "length]",
        ),
    },
    "wrong dim 6 label 4": {
        "lite": (6, 6, "FieldData 'vec' float_vector data has 6 elements, expected num_rows(1) * dim(4) = 4"),
        "milvus": (65535, 1, "the length(6) of float data should divide the dim(4)"),
    },
    "wrong dim 8": {
        "lite": (6, 6, "vector field 'vec' expected dim 4, got 8"),
        "milvus": (
            1100,
            5,
            "the num_rows (2) of field (vec) is not equal to passed num_rows (1): invalid "
            "parameter[expected=1][actual=1]",
        ),
    },
    "wrong dim 8 label 4": {
        "lite": (6, 6, "FieldData 'vec' float_vector data has 8 elements, expected num_rows(1) * dim(4) = 4"),
        "milvus": (
            1100,
            5,
            "the num_rows (2) of field (vec) is not equal to passed num_rows (1): "
            "invalid parameter[expected=1][actual=1]",
        ),
    },
    "wrong type double->float": {"lite": "OK", "milvus": "OK"},
    "wrong type float->int64 pk": {
        "lite": (6, 6, "field 'id' value 1.0 does not match dtype DataType.INT64"),
        "milvus": (65535, 1, "currently only support DataType Int64 or VarChar as PrimaryField"),
    },
    "wrong type int->varchar": {
        "lite": (6, 6, "field 'name' value 1 does not match dtype DataType.VARCHAR"),
        "milvus": (
            1100,
            5,
            "varchar field 'name' is illegal, array type mismatch: invalid "
            "parameter[expected=need string array][actual=got nil]",
        ),
    },
    "wrong type int64->float": {"lite": "OK", "milvus": "OK"},
    "wrong type json->varchar": {
        "lite": "OK",
        "milvus": (
            1100,
            5,
            "varchar field 'name' is illegal, array type mismatch: invalid "
            "parameter[expected=need string array][actual=got nil]",
        ),
    },
    "wrong type str->arr": {
        "lite": (6, 6, "ARRAY field 'arr' must be list/tuple, got str"),
        "milvus": (
            1100,
            5,
            "array field 'arr' is illegal, array type mismatch: invalid "
            "parameter[expected=need Int64 array][actual=got nil]",
        ),
    },
    "wrong type varchar->json": {
        "lite": "OK",
        "milvus": (
            1100,
            5,
            "json field 'js' is illegal, array type mismatch: invalid "
            "parameter[expected=need json array][actual=got nil]",
        ),
    },
    "zero rows": {
        "lite": "OK",
        "milvus": (
            1100,
            5,
            "num_rows should be greater than 0: invalid parameter[expected=invalid num_rows][actual=0]",
        ),
    },
}

DELETES: dict[str, dict[str, Any]] = {
    "bad partition name chars": {
        "lite": (200, 200, "a-b"),
        "milvus": (
            65535,
            1,
            "Invalid partition name: a-b. Partition name can only contain numbers, letters and underscores.",
        ),
    },
    "bad partition name chars insert": {
        "lite": (200, 200, "a-b"),
        "milvus": (
            65535,
            1,
            "Invalid partition name: a-b. Partition name can only contain numbers, letters and underscores.",
        ),
    },
    "empty expr": {"lite": "OK", "milvus": "OK"},
    "empty expr + pkey partition": {
        "lite": "OK",
        "milvus": (65535, 1, "not support manually specifying the partition names if partition key mode is used"),
    },
    "empty expr + unknown collection": {
        "lite": (100, 4, "collection 'nope' does not exist"),
        "milvus": (100, 4, "Failed to get collection id: collection not found[database=default][collection=nope]"),
    },
    "empty expr + unknown partition": {
        "lite": "OK",
        "milvus": (200, 15, "Failed to get partition id: partition not found[partition=nopart]"),
    },
    "loaded empty expr": {
        "lite": ("OK", [0, 2, 3], 3),
        "milvus": (1100, 5, "invalid expression: invalid parameter[expected=valid expr][actual=empty expr]"),
    },
    "loaded id > 3": {"lite": ("OK", [4], 1), "milvus": ("OK", [], 1)},
    "loaded id in ['a']": {
        "lite": (1, 0, "Could not convert 'a' with type str: tried to convert to int64"),
        "milvus": (65535, 1, "failed to create expr plan, expr = id in ['a']"),
    },
    "loaded id in [1,": {
        "lite": (6, 6, "list elements must be literals, got '' at column 10\n  id in [1,\n           ^"),
        "milvus": (65535, 1, "failed to create expr plan, expr = id in [1,"),
    },
    "loaded id in [1,1]": {"lite": ("OK", [1, 1], 2), "milvus": ("OK", [], 2)},
    "loaded id in [100,101]": {"lite": ("OK", [100, 101], 2), "milvus": ("OK", [], 2)},
    "loaded zzz > 1": {
        "lite": (
            6,
            6,
            "unknown field 'zzz' at column 1\n"
            "  zzz > 1\n"
            "  ^^^\n"
            "available fields: ['arr', 'f', 'id', 'js', 'name', 'vec']",
        ),
        "milvus": (65535, 1, "failed to create expr plan, expr = zzz > 1"),
    },
    "partition _default ok": {"lite": ("OK", [2], 1), "milvus": ("OK", [], 1)},
    "partition p1 ok": {"lite": ("OK", [1], 1), "milvus": ("OK", [], 1)},
    "pkey partition": {
        "lite": ("OK", [1], 1),
        "milvus": (65535, 1, "not support manually specifying the partition names if partition key mode is used"),
    },
    "pkey partition + bad expr": {
        "lite": (6, 6, "list elements must be literals, got '' at column 10\n  id in [1,\n           ^"),
        "milvus": (65535, 1, "not support manually specifying the partition names if partition key mode is used"),
    },
    "pkey unknown partition": {
        "lite": (200, 200, "zz"),
        "milvus": (65535, 1, "not support manually specifying the partition names if partition key mode is used"),
    },
    "unknown collection": {
        "lite": (100, 4, "collection 'nope' does not exist"),
        "milvus": (100, 4, "Failed to get collection id: collection not found[database=default][collection=nope]"),
    },
    "unknown partition": {
        "lite": (200, 200, "nopart"),
        "milvus": (200, 15, "Failed to get partition id: partition not found[partition=nopart]"),
    },
    "unknown partition + bad expr": {
        "lite": (6, 6, "list elements must be literals, got '' at column 10\n  id in [1,\n           ^"),
        "milvus": (200, 15, "Failed to get partition id: partition not found[partition=nopart]"),
    },
    "unknown partition + non-pk expr": {
        "lite": ("OK", [], 0),
        "milvus": (200, 15, "Failed to get partition id: partition not found[partition=nopart]"),
    },
    "unknown partition, unloaded": {
        "lite": (200, 200, "nopart"),
        "milvus": (200, 15, "Failed to get partition id: partition not found[partition=nopart]"),
    },
    "unl int ' id in[1,2] '": {"lite": ("OK", [1, 2], 2), "milvus": ("OK", [], 2)},
    "unl int '((id in [2]))'": {"lite": ("OK", [2], 1), "milvus": ("OK", [], 1)},
    "unl int '(id == 1)'": {"lite": ("OK", [], 0), "milvus": ("OK", [], 1)},
    "unl int '(id in [1])'": {"lite": ("OK", [1], 1), "milvus": ("OK", [], 1)},
    "unl int '1 == id'": {"lite": ("OK", [], 0), "milvus": ("OK", [], 1)},
    "unl int '\\tid in [1]'": {"lite": ("OK", [1], 1), "milvus": ("OK", [], 1)},
    "unl int 'id == \"a\"'": {
        "lite": (
            6,
            6,
            "comparison '==' between incompatible types at column 4\n"
            '  id == "a"\n'
            "     ^^\n"
            "left side is int (field 'id'), right side is string",
        ),
        "milvus": (65535, 1, 'failed to create expr plan, expr = id == "a"'),
    },
    "unl int 'id == - 3'": {"lite": ("OK", [], 0), "milvus": ("OK", [], 1)},
    "unl int 'id == -3'": {"lite": ("OK", [], 0), "milvus": ("OK", [], 1)},
    "unl int 'id == 1 == 2'": {
        "lite": (
            6,
            6,
            "comparison '==' between incompatible types at column 9\n"
            "  id == 1 == 2\n"
            "          ^^\n"
            "left side is bool, right side is int",
        ),
        "milvus": (65535, 1, "failed to create expr plan, expr = id == 1 == 2"),
    },
    "unl int 'id == 1'": {"lite": ("OK", [], 0), "milvus": ("OK", [], 1)},
    "unl int 'id >= 1 && id <= 1'": {
        "lite": ("OK", [], 0),
        "milvus": (101, 1, "collection not loaded[collection=470856549369256895]"),
    },
    "unl int 'id IN [1]'": {
        "lite": ("OK", [1], 1),
        "milvus": (65535, 1, "failed to create expr plan, expr = id IN [1]"),
    },
    "unl int 'id in [ ]'": {"lite": ("OK", [], 0), "milvus": ("OK", [], 0)},
    "unl int 'id in [\"1\"]'": {
        "lite": (1, 0, "Could not convert '1' with type str: tried to convert to int64"),
        "milvus": (65535, 1, 'failed to create expr plan, expr = id in ["1"]'),
    },
    "unl int 'id in [\"a\"]'": {
        "lite": (1, 0, "Could not convert 'a' with type str: tried to convert to int64"),
        "milvus": (65535, 1, 'failed to create expr plan, expr = id in ["a"]'),
    },
    "unl int 'id in [+1]'": {
        "lite": (6, 6, "list elements must be literals, got '+' at column 8\n  id in [+1]\n         ^"),
        "milvus": ("OK", [], 1),
    },
    "unl int 'id in [- 5]'": {"lite": ("OK", [-5], 1), "milvus": ("OK", [], 1)},
    "unl int 'id in [--5]'": {
        "lite": (
            6,
            6,
            "unary '-' in list must be followed by a numeric literal at column 8\n  id in [--5]\n         ^",
        ),
        "milvus": ("OK", [], 1),
    },
    "unl int 'id in [-5]'": {"lite": ("OK", [-5], 1), "milvus": ("OK", [], 1)},
    "unl int 'id in [-9223372036854775808]'": {
        "lite": ("OK", [-9223372036854775808], 1),
        "milvus": (65535, 1, "failed to create expr plan, expr = id in [-9223372036854775808]"),
    },
    "unl int 'id in [00]'": {"lite": ("OK", [0], 1), "milvus": ("OK", [], 1)},
    "unl int 'id in [017]'": {"lite": ("OK", [17], 1), "milvus": ("OK", [], 1)},
    "unl int 'id in [0]'": {"lite": ("OK", [0], 1), "milvus": ("OK", [], 1)},
    "unl int 'id in [0b11]'": {
        "lite": (6, 6, "expected ']' or ',' got 'b11' at column 9\n  id in [0b11]\n          ^"),
        "milvus": ("OK", [], 1),
    },
    "unl int 'id in [0x10]'": {
        "lite": (6, 6, "expected ']' or ',' got 'x10' at column 9\n  id in [0x10]\n          ^"),
        "milvus": ("OK", [], 1),
    },
    "unl int 'id in [1)'": {
        "lite": (6, 6, "expected ']' or ',' got ')' at column 9\n  id in [1)\n          ^"),
        "milvus": (65535, 1, "failed to create expr plan, expr = id in [1)"),
    },
    "unl int 'id in [1, -0]'": {"lite": ("OK", [1, 0], 2), "milvus": ("OK", [], 2)},
    "unl int 'id in [1, 2, 3]'": {"lite": ("OK", [1, 2, 3], 3), "milvus": ("OK", [], 3)},
    "unl int 'id in [1,'": {
        "lite": (6, 6, "list elements must be literals, got '' at column 10\n  id in [1,\n           ^"),
        "milvus": (65535, 1, "failed to create expr plan, expr = id in [1,"),
    },
    "unl int 'id in [1,1]'": {"lite": ("OK", [1, 1], 2), "milvus": ("OK", [], 2)},
    "unl int 'id in [1,]'": {"lite": ("OK", [1], 1), "milvus": ("OK", [], 1)},
    "unl int 'id in [1.0]'": {
        "lite": ("OK", [], 0),
        "milvus": (65535, 1, "failed to create expr plan, expr = id in [1.0]"),
    },
    "unl int 'id in [1] '": {"lite": ("OK", [1], 1), "milvus": ("OK", [], 1)},
    "unl int 'id in [1] and id in [2]'": {
        "lite": ("OK", [], 0),
        "milvus": (101, 1, "collection not loaded[collection=470856549369256895]"),
    },
    "unl int 'id in [1]'": {"lite": ("OK", [1], 1), "milvus": ("OK", [], 1)},
    "unl int 'id in [1]\\n'": {"lite": ("OK", [1], 1), "milvus": ("OK", [], 1)},
    "unl int 'id in [1]\\x0b'": {
        "lite": (6, 6, "unexpected character '\\x0b' at column 10\n  id in [1]\x0b\n           ^"),
        "milvus": (65535, 1, "failed to create expr plan, expr = id in [1]\x0b"),
    },
    "unl int 'id in [1_000]'": {
        "lite": (6, 6, "expected ']' or ',' got '_000' at column 9\n  id in [1_000]\n          ^"),
        "milvus": (65535, 1, "failed to create expr plan, expr = id in [1_000]"),
    },
    "unl int 'id in [1e3]'": {
        "lite": ("OK", [], 0),
        "milvus": (65535, 1, "failed to create expr plan, expr = id in [1e3]"),
    },
    "unl int 'id in [9223372036854775807]'": {"lite": ("OK", [9223372036854775807], 1), "milvus": ("OK", [], 1)},
    "unl int 'id in [9223372036854775808]'": {
        "lite": (1, 0, "Python int too large to convert to C long"),
        "milvus": (65535, 1, "failed to create expr plan, expr = id in [9223372036854775808]"),
    },
    "unl int 'id in []'": {"lite": ("OK", [], 0), "milvus": ("OK", [], 0)},
    "unl int 'id in [true]'": {
        "lite": (
            6,
            6,
            "'in' list elements (bool) incompatible with field 'id' (int) at column 4\n  id in [true]\n     ^^",
        ),
        "milvus": (65535, 1, "failed to create expr plan, expr = id in [true]"),
    },
    "unl int 'id in [١]'": {
        "lite": ("OK", [1], 1),
        "milvus": (65535, 1, "failed to create expr plan, expr = id in [١]"),
    },
    "unl int 'id not in [1]'": {
        "lite": ("OK", [], 0),
        "milvus": (101, 1, "collection not loaded[collection=470856549369256895]"),
    },
    "unl int 'id\\nin\\n[1]'": {"lite": ("OK", [1], 1), "milvus": ("OK", [], 1)},
    "vpk loaded pk in [1]": {
        "lite": (1, 0, "Expected bytes, got a 'int' object"),
        "milvus": (65535, 1, "failed to create expr plan, expr = pk in [1]"),
    },
    "vunl str \"pk in ['']\"": {"lite": ("OK", [""], 1), "milvus": ("OK", [], 1)},
    "vunl str \"pk in ['a''b']\"": {
        "lite": (6, 6, "expected ']' or ',' got \"'b'\" at column 11\n  pk in ['a''b']\n            ^"),
        "milvus": (65535, 1, "failed to create expr plan, expr = pk in ['a''b']"),
    },
    "vunl str \"pk in ['a']\"": {"lite": ("OK", ["a"], 1), "milvus": ("OK", [], 1)},
    "vunl str \"pk in ['it\\\\'s']\"": {"lite": ("OK", ["it's"], 1), "milvus": ("OK", [], 1)},
    "vunl str '\"x\" == pk'": {"lite": ("OK", [], 0), "milvus": ("OK", [], 1)},
    "vunl str 'pk == \"x\"'": {"lite": ("OK", [], 0), "milvus": ("OK", [], 1)},
    "vunl str 'pk in [\"\"]'": {"lite": ("OK", [""], 1), "milvus": ("OK", [], 1)},
    "vunl str 'pk in [\"\\\\1\"]'": {
        "lite": (6, 6, 'unknown escape sequence \\1 at column 9\n  pk in ["\\1"]\n          ^^'),
        "milvus": (65535, 1, 'failed to create expr plan, expr = pk in ["\\1"]'),
    },
    "vunl str 'pk in [\"\\\\101\"]'": {
        "lite": (6, 6, 'unknown escape sequence \\1 at column 9\n  pk in ["\\101"]\n          ^^'),
        "milvus": ("OK", [], 1),
    },
    "vunl str 'pk in [\"\\\\12\"]'": {
        "lite": (6, 6, 'unknown escape sequence \\1 at column 9\n  pk in ["\\12"]\n          ^^'),
        "milvus": (65535, 1, 'failed to create expr plan, expr = pk in ["\\12"]'),
    },
    "vunl str 'pk in [\"\\\\8\"]'": {
        "lite": (6, 6, 'unknown escape sequence \\8 at column 9\n  pk in ["\\8"]\n          ^^'),
        "milvus": (65535, 1, 'failed to create expr plan, expr = pk in ["\\8"]'),
    },
    "vunl str 'pk in [\"\\\\U0001F600\"]'": {
        "lite": (6, 6, 'unknown escape sequence \\U at column 9\n  pk in ["\\U0001F600"]\n          ^^'),
        "milvus": ("OK", [], 1),
    },
    "vunl str 'pk in [\"\\\\\\'\"]'": {"lite": ("OK", ["'"], 1), "milvus": ("OK", [], 1)},
    "vunl str 'pk in [\"\\\\a\\\\b\\\\f\\\\v\\\\r\"]'": {
        "lite": (6, 6, 'unknown escape sequence \\a at column 9\n  pk in ["\\a\\b\\f\\v\\r"]\n          ^^'),
        "milvus": ("OK", [], 1),
    },
    "vunl str 'pk in [\"\\\\u0041\"]'": {
        "lite": (6, 6, 'unknown escape sequence \\u at column 9\n  pk in ["\\u0041"]\n          ^^'),
        "milvus": ("OK", [], 1),
    },
    "vunl str 'pk in [\"\\\\u00e9\"]'": {
        "lite": (6, 6, 'unknown escape sequence \\u at column 9\n  pk in ["\\u00e9"]\n          ^^'),
        "milvus": ("OK", [], 1),
    },
    "vunl str 'pk in [\"\\\\ud800\"]'": {
        "lite": (6, 6, 'unknown escape sequence \\u at column 9\n  pk in ["\\ud800"]\n          ^^'),
        "milvus": (65535, 1, 'failed to create expr plan, expr = pk in ["\\ud800"]'),
    },
    "vunl str 'pk in [\"\\\\x4\"]'": {
        "lite": (6, 6, 'unknown escape sequence \\x at column 9\n  pk in ["\\x4"]\n          ^^'),
        "milvus": (65535, 1, 'failed to create expr plan, expr = pk in ["\\x4"]'),
    },
    "vunl str 'pk in [\"\\\\x41\"]'": {
        "lite": (6, 6, 'unknown escape sequence \\x at column 9\n  pk in ["\\x41"]\n          ^^'),
        "milvus": ("OK", [], 1),
    },
    "vunl str 'pk in [\"\\\\x414\"]'": {
        "lite": (6, 6, 'unknown escape sequence \\x at column 9\n  pk in ["\\x414"]\n          ^^'),
        "milvus": ("OK", [], 1),
    },
    "vunl str 'pk in [\"\\\\x80\"]'": {
        "lite": (6, 6, 'unknown escape sequence \\x at column 9\n  pk in ["\\x80"]\n          ^^'),
        "milvus": (65535, 1, "string field contains invalid UTF-8"),
    },
    "vunl str 'pk in [\"\\\\xff\"]'": {
        "lite": (6, 6, 'unknown escape sequence \\x at column 9\n  pk in ["\\xff"]\n          ^^'),
        "milvus": (65535, 1, "string field contains invalid UTF-8"),
    },
    'vunl str \'pk in ["a" "b"]\'': {
        "lite": (6, 6, "expected ']' or ',' got '\"b\"' at column 12\n  pk in [\"a\" \"b\"]\n             ^"),
        "milvus": (65535, 1, 'failed to create expr plan, expr = pk in ["a" "b"]'),
    },
    'vunl str \'pk in ["a" , "b"]\'': {"lite": ("OK", ["a", "b"], 2), "milvus": ("OK", [], 2)},
    "vunl str 'pk in [\"a\", 1]'": {
        "lite": (1, 0, "Expected bytes, got a 'int' object"),
        "milvus": (65535, 1, 'failed to create expr plan, expr = pk in ["a", 1]'),
    },
    'vunl str \'pk in ["a","b",]\'': {"lite": ("OK", ["a", "b"], 2), "milvus": ("OK", [], 2)},
    "vunl str 'pk in [\"a\"]'": {"lite": ("OK", ["a"], 1), "milvus": ("OK", [], 1)},
    'vunl str \'pk in ["a\\\\"b"]\'': {"lite": ("OK", ['a"b'], 1), "milvus": ("OK", [], 1)},
    "vunl str 'pk in [\"a\\\\?\"]'": {
        "lite": (6, 6, 'unknown escape sequence \\? at column 10\n  pk in ["a\\?"]\n           ^^'),
        "milvus": (65535, 1, 'failed to create expr plan, expr = pk in ["a\\?"]'),
    },
    "vunl str 'pk in [\"a\\\\\\\\b\"]'": {"lite": ("OK", ["a\\b"], 1), "milvus": ("OK", [], 1)},
    "vunl str 'pk in [\"a\\\\\\nb\"]'": {
        "lite": (6, 6, 'unknown escape sequence \\\n at column 10\n  pk in ["a\\\nb"]\n           ^^'),
        "milvus": (65535, 1, 'failed to create expr plan, expr = pk in ["a\\\nb"]'),
    },
    "vunl str 'pk in [\"a\\\\nb\"]'": {"lite": ("OK", ["a\nb"], 1), "milvus": ("OK", [], 1)},
    "vunl str 'pk in [\"a\\\\tb\"]'": {"lite": ("OK", ["a\tb"], 1), "milvus": ("OK", [], 1)},
    "vunl str 'pk in [\"a\\x01b\"]'": {"lite": ("OK", ["a\x01b"], 1), "milvus": ("OK", [], 1)},
    "vunl str 'pk in [\"a\\x7fb\"]'": {"lite": ("OK", ["a\x7fb"], 1), "milvus": ("OK", [], 1)},
    "vunl str 'pk in [\"it\\\\\\'s\"]'": {"lite": ("OK", ["it's"], 1), "milvus": ("OK", [], 1)},
    "vunl str 'pk in [\"é\"]'": {"lite": ("OK", ["é"], 1), "milvus": ("OK", [], 1)},
    "vunl str 'pk in [1]'": {
        "lite": (1, 0, "Expected bytes, got a 'int' object"),
        "milvus": (65535, 1, "failed to create expr plan, expr = pk in [1]"),
    },
    "vunl str 'pk in [L\"a\"]'": {
        "lite": (6, 6, "list elements must be literals, got 'L' at column 8\n  pk in [L\"a\"]\n         ^"),
        "milvus": ("OK", [], 1),
    },
    "vunl str 'pk in [\\'\"\\']'": {"lite": ("OK", ['"'], 1), "milvus": ("OK", [], 1)},
    "vunl str 'pk in [\\'\\\\\"\\']'": {"lite": ("OK", ['"'], 1), "milvus": ("OK", [], 1)},
    "vunl str 'pk in [\\'a\"b\\']'": {"lite": ("OK", ['a"b'], 1), "milvus": ("OK", [], 1)},
    "vunl str 'pk in [u8\"a\"]'": {
        "lite": (6, 6, "list elements must be literals, got 'u8' at column 8\n  pk in [u8\"a\"]\n         ^^"),
        "milvus": ("OK", [], 1),
    },
    "whitespace expr": {
        "lite": (6, 6, "unexpected end of expression at column 4\n     \n     ^\nexpression cannot be empty"),
        "milvus": "OK",
    },
}
