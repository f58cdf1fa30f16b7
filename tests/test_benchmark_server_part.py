"""The browser benchmark's server part of an answer: upload requests and run ends off CDP's Network events."""

import base64

from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from benchmarks.browser import ServerPart


def frame_event(message: ForwardMsg, at: float) -> dict:
    """`Network.webSocketFrameReceived` as CDP reports a binary frame carrying `message`."""
    payload = base64.b64encode(message.SerializeToString()).decode()
    return {"timestamp": at, "response": {"opcode": 2, "mask": False, "payloadData": payload}}


def run_end() -> ForwardMsg:
    message = ForwardMsg()
    message.script_finished = ForwardMsg.FINISHED_SUCCESSFULLY
    return message


def element() -> ForwardMsg:
    message = ForwardMsg()
    message.delta.new_element.markdown.body = "Predicted class"
    return message


def upload_event(at: float, url: str = "http://127.0.0.1:8501/_stcore/upload_file/s/f", method: str = "PUT") -> dict:
    return {"timestamp": at, "request": {"url": url, "method": method}}


def test_each_upload_is_paired_with_the_first_run_end_after_it():
    part = ServerPart()
    part.on_frame(frame_event(run_end(), 0.5))  # the page's first run, before any upload
    part.on_request(upload_event(1.0))
    part.on_frame(frame_event(element(), 1.5))
    part.on_frame(frame_event(run_end(), 2.0))
    part.on_request(upload_event(5.0))
    part.on_frame(frame_event(run_end(), 6.25))
    part.on_frame(frame_event(run_end(), 7.0))  # a later run, not the upload's

    assert part.seconds() == [1.0, 1.25]


def test_other_requests_text_frames_and_unanswered_uploads_are_not_counted():
    part = ServerPart()
    part.on_request(upload_event(1.0, url="http://127.0.0.1:8501/media/abc.jpg", method="GET"))
    part.on_request(upload_event(1.0, method="DELETE"))
    part.on_frame({"timestamp": 2.0, "response": {"opcode": 1, "mask": False, "payloadData": "hello"}})
    part.on_request(upload_event(3.0))

    assert part.uploads_sent == [3.0] and part.runs_ended == [] and part.seconds() == []
