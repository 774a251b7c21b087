// Test fixture for the generic testbench: out[k] = in[k] + 1 (mod 2^8), L = 2 cycles, II = 1.
module plus_one_top #(parameter N = 3, parameter W = 8) (
    input  wire           clk,
    input  wire           rst,
    input  wire           in_valid,
    input  wire [N*W-1:0] in_data,
    output reg            out_valid,
    output reg  [N*W-1:0] out_data
);
    reg [N*W-1:0] stage;
    reg stage_valid;
    integer k;
    always @(posedge clk) begin
        if (rst) begin
            stage_valid <= 1'b0;
            out_valid <= 1'b0;
        end else begin
            stage_valid <= in_valid;
            out_valid <= stage_valid;
        end
        for (k = 0; k < N; k = k + 1)
            stage[k*W +: W] <= in_data[k*W +: W] + 1'b1;
        out_data <= stage;
    end
endmodule
